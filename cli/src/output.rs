//! Tables for people, JSON for scripts: every command builds both and prints one.

use serde_json::Value;

/// Rows under a header, printed with aligned columns, then notes.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    notes: Vec<String>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn row(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// A line printed after the rows.
    pub fn note(&mut self, line: String) {
        self.notes.push(line);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.len()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(c.len());
                }
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    s.push_str(c);
                } else {
                    s.push_str(&format!("{c:<w$}  ", w = widths[i]));
                }
            }
            s.trim_end().to_string()
        };
        let mut out = String::new();
        if !self.rows.is_empty() {
            out.push_str(&line(&self.header));
            out.push('\n');
            for r in &self.rows {
                out.push_str(&line(r));
                out.push('\n');
            }
        }
        for n in &self.notes {
            out.push_str(n);
            out.push('\n');
        }
        out
    }
}

/// Where results go: stdout, as a table or as one JSON document.
pub struct Output {
    json: bool,
}

impl Output {
    pub fn new(json: bool) -> Output {
        Output { json }
    }

    pub fn json(&self) -> bool {
        self.json
    }

    pub fn print(&self, table: Table, doc: Value) {
        if self.json {
            println!("{doc}");
        } else {
            print!("{}", table.render());
        }
    }

    /// The result of a command that changes something.
    pub fn done(&self, message: &str, doc: Value) {
        if self.json {
            println!("{doc}");
        } else {
            println!("{message}");
        }
    }
}

/// Broker ids as "0,1,2".
pub fn ids(v: &[i32]) -> String {
    v.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_and_notes_follow() {
        let mut t = Table::new(&["TOPIC", "PARTITIONS"]);
        t.row(vec!["orders".into(), "12".into()]);
        t.row(vec!["a".into(), "1".into()]);
        t.note("2 topics".into());
        assert_eq!(t.render(), "TOPIC   PARTITIONS\norders  12\na       1\n2 topics\n");
    }
}
