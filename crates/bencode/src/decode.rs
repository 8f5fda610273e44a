//! The strict bencode decoder for untrusted input (BEP 3).
//!
//! Rules enforced, each reported as a [`DecodeError`] carrying the byte offset:
//! * integers are `i<digits>e` with an optional `-`, no leading zeros, no `-0`, and fit `i64`;
//! * byte-string lengths have no leading zeros and are checked against the remaining input
//!   before the string is taken (nothing is allocated from a length field);
//! * lists and dictionaries nest at most [`MAX_DEPTH`] deep, which also bounds recursion;
//! * dictionary keys are byte strings and appear at most once; their order is not checked,
//!   because real `.torrent` files have unsorted keys and the info-hash is computed over the
//!   bytes as received anyway;
//! * [`decode`] and [`dict_value_span`] require the whole input to be one value.

use std::collections::btree_map::Entry;
use std::ops::Range;

use crate::value::{Dict, Value};

/// Deepest nesting of lists and dictionaries the decoder accepts. The outermost list or
/// dictionary is depth 1. No BitTorrent structure needs more than a handful of levels.
pub const MAX_DEPTH: usize = 64;

/// Why an input is not acceptable bencode. Every variant carries `at`, the offset of the
/// offending byte in the input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended in the middle of a value (or was empty).
    #[error("unexpected end of input at byte {at}")]
    UnexpectedEnd {
        /// Offset where more input was needed.
        at: usize,
    },
    /// A byte that cannot start or continue a value at this position.
    #[error("unexpected byte '{}' at byte {at}", [*byte].escape_ascii())]
    UnexpectedByte {
        /// The offending byte.
        byte: u8,
        /// Its offset.
        at: usize,
    },
    /// Lists and dictionaries nested deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {MAX_DEPTH} at byte {at}")]
    TooDeep {
        /// Offset of the list or dictionary that went too deep.
        at: usize,
    },
    /// An integer without digits, with a leading zero, or written as `-0`.
    #[error("malformed integer at byte {at}: {reason}")]
    BadInteger {
        /// Offset of the integer's `i`.
        at: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An integer outside the range of `i64`.
    #[error("integer out of range at byte {at}")]
    IntegerOverflow {
        /// Offset of the integer's `i`.
        at: usize,
    },
    /// A byte-string length with a leading zero or too many digits to be real.
    #[error("malformed byte-string length at byte {at}: {reason}")]
    BadLength {
        /// Offset of the length's first digit.
        at: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A byte string whose declared length goes past the end of the input.
    #[error("byte string of {len} bytes at byte {at} runs past the end of input ({remaining} bytes left)")]
    StringPastEnd {
        /// The declared length.
        len: u64,
        /// Bytes left after the `:`.
        remaining: usize,
        /// Offset of the length's first digit.
        at: usize,
    },
    /// A dictionary key that is an integer, list or dictionary.
    #[error("dictionary key at byte {at} is not a byte string")]
    KeyNotString {
        /// Offset of the key.
        at: usize,
    },
    /// A dictionary with the same key twice.
    #[error("duplicate key \"{key}\" at byte {at}")]
    DuplicateKey {
        /// The key, with non-printable bytes escaped.
        key: String,
        /// Offset of the second occurrence.
        at: usize,
    },
    /// Bytes left over after one complete value.
    #[error("{count} trailing bytes after the value, at byte {at}")]
    TrailingData {
        /// Offset of the first extra byte.
        at: usize,
        /// Number of extra bytes.
        count: usize,
    },
}

impl DecodeError {
    /// Offset in the input where the problem was found.
    pub fn offset(&self) -> usize {
        match *self {
            DecodeError::UnexpectedEnd { at }
            | DecodeError::UnexpectedByte { at, .. }
            | DecodeError::TooDeep { at }
            | DecodeError::BadInteger { at, .. }
            | DecodeError::IntegerOverflow { at }
            | DecodeError::BadLength { at, .. }
            | DecodeError::StringPastEnd { at, .. }
            | DecodeError::KeyNotString { at }
            | DecodeError::DuplicateKey { at, .. }
            | DecodeError::TrailingData { at, .. } => at,
        }
    }
}

/// Decodes an input that must hold exactly one bencode value.
pub fn decode(input: &[u8]) -> Result<Value<'_>, DecodeError> {
    let mut d = Decoder { input, pos: 0 };
    let value = d.value(0)?;
    d.finish()?;
    Ok(value)
}

/// Decodes the one bencode value at the start of `input` and returns it with the number of
/// bytes it took; whatever follows is left to the caller.
pub fn decode_prefix(input: &[u8]) -> Result<(Value<'_>, usize), DecodeError> {
    let mut d = Decoder { input, pos: 0 };
    let value = d.value(0)?;
    Ok((value, d.pos))
}

/// The input range of each value of a top-level dictionary, keyed like the dictionary, in
/// input order.
pub type Spans<'a> = Vec<(&'a [u8], Range<usize>)>;

/// Decodes like [`decode`] and, when the value is a dictionary, also returns where each of
/// its values lies in `input` (empty for other values). One pass over the input.
pub fn decode_with_spans(input: &[u8]) -> Result<(Value<'_>, Spans<'_>), DecodeError> {
    let mut d = Decoder { input, pos: 0 };
    let mut spans = Vec::new();
    let value = if d.peek()? == b'd' { Value::Dict(d.dict(0, Some(&mut spans))?) } else { d.value(0)? };
    d.finish()?;
    Ok((value, spans))
}

/// Decodes `input` (which must be exactly one valid value) and, when it is a dictionary
/// holding `key`, returns the byte range of that key's value in `input`. `Ok(None)` when the
/// value is not a dictionary or has no such key.
///
/// This is how the info-hash is taken over the `info` dictionary exactly as received, even
/// when it is not canonically encoded.
pub fn dict_value_span(input: &[u8], key: &[u8]) -> Result<Option<Range<usize>>, DecodeError> {
    let (_, spans) = decode_with_spans(input)?;
    Ok(spans.into_iter().find(|(k, _)| *k == key).map(|(_, span)| span))
}

/// Cursor over the input. `pos` only moves forward and never exceeds `input.len()`.
struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn peek(&self) -> Result<u8, DecodeError> {
        self.input.get(self.pos).copied().ok_or(DecodeError::UnexpectedEnd { at: self.pos })
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.pos == self.input.len() {
            Ok(())
        } else {
            Err(DecodeError::TrailingData { at: self.pos, count: self.input.len() - self.pos })
        }
    }

    /// Decodes one value; `depth` is the number of containers already open around it.
    fn value(&mut self, depth: usize) -> Result<Value<'a>, DecodeError> {
        match self.peek()? {
            b'i' => self.int().map(Value::Int),
            b'0'..=b'9' => self.bytes().map(Value::Bytes),
            b'l' => self.list(depth).map(Value::List),
            b'd' => self.dict(depth, None).map(Value::Dict),
            byte => Err(DecodeError::UnexpectedByte { byte, at: self.pos }),
        }
    }

    /// Steps over the opening `l` or `d` of a container at nesting `depth`.
    fn open(&mut self, depth: usize) -> Result<(), DecodeError> {
        if depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep { at: self.pos });
        }
        self.pos += 1;
        Ok(())
    }

    fn int(&mut self) -> Result<i64, DecodeError> {
        let at = self.pos;
        self.pos += 1; // 'i'
        let negative = self.peek()? == b'-';
        if negative {
            self.pos += 1;
        }
        let digits_start = self.pos;
        let mut n: i64 = 0;
        loop {
            match self.peek()? {
                b'e' => break,
                c @ b'0'..=b'9' => {
                    let d = i64::from(c - b'0');
                    // Accumulate towards the sign so that i64::MIN is representable.
                    n = n
                        .checked_mul(10)
                        .and_then(|n| if negative { n.checked_sub(d) } else { n.checked_add(d) })
                        .ok_or(DecodeError::IntegerOverflow { at })?;
                    self.pos += 1;
                }
                byte => return Err(DecodeError::UnexpectedByte { byte, at: self.pos }),
            }
        }
        let digits = &self.input[digits_start..self.pos];
        if digits.is_empty() {
            return Err(DecodeError::BadInteger { at, reason: "no digits" });
        }
        if digits[0] == b'0' {
            if negative {
                return Err(DecodeError::BadInteger { at, reason: "negative zero" });
            }
            if digits.len() > 1 {
                return Err(DecodeError::BadInteger { at, reason: "leading zero" });
            }
        }
        self.pos += 1; // 'e'
        Ok(n)
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let at = self.pos;
        let mut len: u64 = 0;
        loop {
            match self.peek()? {
                b':' => break,
                c @ b'0'..=b'9' => {
                    if self.pos - at >= 19 {
                        return Err(DecodeError::BadLength { at, reason: "too many digits" });
                    }
                    len = len * 10 + u64::from(c - b'0');
                    self.pos += 1;
                }
                byte => return Err(DecodeError::UnexpectedByte { byte, at: self.pos }),
            }
        }
        if self.input[at] == b'0' && self.pos - at > 1 {
            return Err(DecodeError::BadLength { at, reason: "leading zero" });
        }
        self.pos += 1; // ':'
        let remaining = self.input.len() - self.pos;
        let len_usize = usize::try_from(len).ok().filter(|&l| l <= remaining);
        let Some(len_usize) = len_usize else {
            return Err(DecodeError::StringPastEnd { len, remaining, at });
        };
        let s = &self.input[self.pos..self.pos + len_usize];
        self.pos += len_usize;
        Ok(s)
    }

    fn list(&mut self, depth: usize) -> Result<Vec<Value<'a>>, DecodeError> {
        self.open(depth)?;
        let mut items = Vec::new();
        while self.peek()? != b'e' {
            items.push(self.value(depth + 1)?);
        }
        self.pos += 1;
        Ok(items)
    }

    /// Decodes a dictionary; when `spans` is given, records the input range of every value.
    fn dict(
        &mut self,
        depth: usize,
        mut spans: Option<&mut Vec<(&'a [u8], Range<usize>)>>,
    ) -> Result<Dict<'a>, DecodeError> {
        self.open(depth)?;
        let mut dict = Dict::new();
        loop {
            let at = self.pos;
            match self.peek()? {
                b'e' => break,
                b'0'..=b'9' => {}
                b'i' | b'l' | b'd' => return Err(DecodeError::KeyNotString { at }),
                byte => return Err(DecodeError::UnexpectedByte { byte, at }),
            }
            let key = self.bytes()?;
            let start = self.pos;
            let value = self.value(depth + 1)?;
            if let Some(spans) = spans.as_deref_mut() {
                spans.push((key, start..self.pos));
            }
            match dict.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                Entry::Occupied(_) => {
                    let key = key.escape_ascii().to_string();
                    return Err(DecodeError::DuplicateKey { key, at });
                }
            }
        }
        self.pos += 1;
        Ok(dict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(input: &[u8]) -> DecodeError {
        decode(input).expect_err("should be rejected")
    }

    #[test]
    fn decodes_each_kind() {
        assert_eq!(decode(b"i42e"), Ok(Value::Int(42)));
        assert_eq!(decode(b"i-7e"), Ok(Value::Int(-7)));
        assert_eq!(decode(b"i0e"), Ok(Value::Int(0)));
        assert_eq!(decode(b"4:spam"), Ok(Value::Bytes(b"spam")));
        assert_eq!(decode(b"0:"), Ok(Value::Bytes(b"")));
        assert_eq!(decode(b"l4:spami1ee"), Ok(Value::List(vec![Value::Bytes(b"spam"), Value::Int(1)])));
        let d = decode(b"d3:cow3:moo4:spam4:eggse").expect("valid");
        assert_eq!(d.get(b"cow").and_then(Value::as_str), Some("moo"));
        assert_eq!(d.get(b"spam").and_then(Value::as_str), Some("eggs"));
    }

    #[test]
    fn integer_extremes() {
        assert_eq!(decode(b"i9223372036854775807e"), Ok(Value::Int(i64::MAX)));
        assert_eq!(decode(b"i-9223372036854775808e"), Ok(Value::Int(i64::MIN)));
        assert_eq!(err(b"i9223372036854775808e"), DecodeError::IntegerOverflow { at: 0 });
        assert_eq!(err(b"i-9223372036854775809e"), DecodeError::IntegerOverflow { at: 0 });
    }

    #[test]
    fn rejects_non_canonical_integers() {
        assert_eq!(err(b"i03e"), DecodeError::BadInteger { at: 0, reason: "leading zero" });
        assert_eq!(err(b"i-0e"), DecodeError::BadInteger { at: 0, reason: "negative zero" });
        assert_eq!(err(b"ie"), DecodeError::BadInteger { at: 0, reason: "no digits" });
        assert_eq!(err(b"i-e"), DecodeError::BadInteger { at: 0, reason: "no digits" });
        assert_eq!(err(b"i1-2e"), DecodeError::UnexpectedByte { byte: b'-', at: 2 });
        assert_eq!(err(b"i12"), DecodeError::UnexpectedEnd { at: 3 });
    }

    #[test]
    fn rejects_bad_strings() {
        assert_eq!(err(b"5:abc"), DecodeError::StringPastEnd { len: 5, remaining: 3, at: 0 });
        assert_eq!(err(b"03:abc"), DecodeError::BadLength { at: 0, reason: "leading zero" });
        assert_eq!(err(b"99999999999999999999:x"), DecodeError::BadLength { at: 0, reason: "too many digits" });
        assert_eq!(err(b"3"), DecodeError::UnexpectedEnd { at: 1 });
        assert_eq!(err(b"3x"), DecodeError::UnexpectedByte { byte: b'x', at: 1 });
    }

    #[test]
    fn huge_length_is_rejected_before_allocation() {
        let e = err(b"999999999999999999:");
        assert!(matches!(e, DecodeError::StringPastEnd { len: 999_999_999_999_999_999, .. }));
    }

    #[test]
    fn rejects_trailing_and_empty() {
        assert_eq!(err(b""), DecodeError::UnexpectedEnd { at: 0 });
        assert_eq!(err(b"i1ei2e"), DecodeError::TrailingData { at: 3, count: 3 });
        assert_eq!(err(b"x"), DecodeError::UnexpectedByte { byte: b'x', at: 0 });
        assert_eq!(err(b"l"), DecodeError::UnexpectedEnd { at: 1 });
    }

    #[test]
    fn dictionary_rules() {
        // Unsorted keys are accepted.
        let d = decode(b"d1:bi1e1:ai2ee").expect("unsorted is fine");
        assert_eq!(d.get(b"a").and_then(Value::as_int), Some(2));
        assert_eq!(err(b"d4:infoi1e1:xi0e4:infoi2ee"), DecodeError::DuplicateKey { key: "info".into(), at: 16 });
        assert_eq!(err(b"di1ei2ee"), DecodeError::KeyNotString { at: 1 });
        assert_eq!(err(b"d1:ae"), DecodeError::UnexpectedByte { byte: b'e', at: 4 });
    }

    #[test]
    fn depth_limit() {
        let ok = [b"l".repeat(MAX_DEPTH), b"e".repeat(MAX_DEPTH)].concat();
        assert!(decode(&ok).is_ok());
        let deep = [b"l".repeat(MAX_DEPTH + 1), b"e".repeat(MAX_DEPTH + 1)].concat();
        assert_eq!(decode(&deep), Err(DecodeError::TooDeep { at: MAX_DEPTH }));
        // Deep input that is also truncated still fails fast on depth.
        assert_eq!(decode(&b"d1:a".repeat(10_000)), Err(DecodeError::TooDeep { at: 256 }));
    }

    #[test]
    fn error_messages_name_the_offset() {
        assert_eq!(err(b"d4:info").to_string(), "unexpected end of input at byte 7");
        assert_eq!(err(&[b"l".repeat(70), b"e".repeat(70)].concat()).to_string(), "nesting deeper than 64 at byte 64");
        assert_eq!(err(b"d4:infoi1e4:infoi2ee").to_string(), "duplicate key \"info\" at byte 10");
        assert_eq!(err(b"i1ex").offset(), 3);
    }

    #[test]
    fn prefix_reports_consumed_bytes() {
        let input = b"d8:msg_typei1e5:piecei0eeRAWDATA";
        let (v, used) = decode_prefix(input).expect("valid prefix");
        assert_eq!(used, input.len() - 7);
        assert_eq!(v.get(b"msg_type").and_then(Value::as_int), Some(1));
        assert_eq!(&input[used..], b"RAWDATA");
    }

    #[test]
    fn value_span_is_exact() {
        // Non-canonical (unsorted) info dictionary: the span must be the raw bytes.
        let input = b"d8:announce3:url4:infod4:name1:x6:lengthi1eee";
        let span = dict_value_span(input, b"info").expect("valid").expect("present");
        assert_eq!(&input[span], b"d4:name1:x6:lengthi1ee");
        assert_eq!(dict_value_span(input, b"nope"), Ok(None));
        assert_eq!(dict_value_span(b"li1ee", b"info"), Ok(None));
        assert!(dict_value_span(b"d4:infoi1eeX", b"info").is_err());
        assert!(dict_value_span(b"li1e", b"info").is_err());
        let (v, spans) = decode_with_spans(input).expect("valid");
        assert_eq!(spans.len(), 2);
        assert_eq!((spans[0].0, spans[0].1.clone()), (&b"announce"[..], 11..16));
        assert_eq!(v.get(b"announce").and_then(Value::as_str), Some("url"));
        assert_eq!(decode_with_spans(b"i1e"), Ok((Value::Int(1), vec![])));
    }
}
