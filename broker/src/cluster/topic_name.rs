//! Kafka's topic name rules: 1-249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.

use kafka_protocol::error::ResponseError;

use super::AdminError;

/// Longest legal topic name (Kafka's limit, so `<topic>-<partition>` fits a file name).
pub const MAX_LEN: usize = 249;

/// Checks a topic name, returning INVALID_TOPIC_EXCEPTION with Kafka's wording.
pub fn validate(name: &str) -> Result<(), AdminError> {
    let bad = |why: String| Err(AdminError::new(ResponseError::InvalidTopicException, why));
    if name.is_empty() {
        return bad("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return bad("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > MAX_LEN {
        return bad(format!(
            "Topic name is illegal, it can't be longer than {MAX_LEN} characters, topic name: {name}"
        ));
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-')
    {
        return bad(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_topic_name_rules() {
        for ok in ["orders", "a.b_c-d", "X", &"t".repeat(249)] {
            assert!(validate(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "ümlaut", &"t".repeat(250), "../etc"] {
            let e = validate(bad).unwrap_err();
            assert_eq!(e.code, ResponseError::InvalidTopicException, "{bad}");
        }
    }
}
