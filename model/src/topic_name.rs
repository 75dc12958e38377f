//! Kafka's topic name rules: 1-249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.

/// Longest legal topic name (Kafka's limit, so `<topic>-<partition>` fits a file name).
pub const MAX_LEN: usize = 249;

/// Why a topic name is illegal, in Kafka's wording (INVALID_TOPIC_EXCEPTION).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicNameError {
    #[error("Topic name is illegal, it can't be empty")]
    Empty,
    #[error("Topic name cannot be \".\" or \"..\"")]
    Dots,
    #[error("Topic name is illegal, it can't be longer than {MAX_LEN} characters, topic name: {0}")]
    TooLong(String),
    #[error("Topic name \"{0}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'")]
    IllegalCharacter(String),
}

/// Checks a topic name against Kafka's rules.
pub fn validate(name: &str) -> Result<(), TopicNameError> {
    if name.is_empty() {
        return Err(TopicNameError::Empty);
    }
    if name == "." || name == ".." {
        return Err(TopicNameError::Dots);
    }
    if name.len() > MAX_LEN {
        return Err(TopicNameError::TooLong(name.to_string()));
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-')
    {
        return Err(TopicNameError::IllegalCharacter(name.to_string()));
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
            assert!(validate(bad).is_err(), "{bad}");
        }
        assert_eq!(validate(""), Err(TopicNameError::Empty));
        assert_eq!(validate("a/b"), Err(TopicNameError::IllegalCharacter("a/b".into())));
    }
}
