//! Text from untrusted sources (torrent names, file paths, peers' client names, tracker
//! messages) made safe for a terminal: control characters, which could clear the screen,
//! set the window title or move the cursor, are shown as `?`.

use std::borrow::Cow;

/// `s` with every control character (C0, DEL, C1) replaced by `?`.
pub(crate) fn printable(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_control) {
        Cow::Owned(s.chars().map(|c| if c.is_control() { '?' } else { c }).collect())
    } else {
        Cow::Borrowed(s)
    }
}

/// Makes every string in `value` (keys included) [`printable`], for showing a daemon's answer.
pub(crate) fn scrub(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            if let std::borrow::Cow::Owned(clean) = printable(s) {
                *s = clean;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(scrub),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (k, mut v) in entries {
                scrub(&mut v);
                map.insert(printable(&k).into_owned(), v);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::{printable, scrub};

    #[test]
    fn answers_are_scrubbed_throughout() {
        let mut v = serde_json::json!({"name": "x\x1b[2J", "files": [{"path": "a\x07"}], "n": 3});
        scrub(&mut v);
        assert_eq!(v, serde_json::json!({"name": "x?[2J", "files": [{"path": "a?"}], "n": 3}));
    }

    #[test]
    fn escapes_become_question_marks() {
        assert_eq!(printable("plain name ü"), "plain name ü");
        assert_eq!(printable("a\x1b[2Jb"), "a?[2Jb");
        assert_eq!(printable("\x1b]0;title\x07x"), "?]0;title?x");
        assert_eq!(printable("tab\tnew\nline\r"), "tab?new?line?");
        assert_eq!(printable("c1\u{9b}31m"), "c1?31m");
        assert_eq!(printable("del\x7f"), "del?");
    }
}
