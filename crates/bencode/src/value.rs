//! The bencode value tree and its accessors. Byte strings and dictionary keys borrow from the
//! decoded input (or from whatever the caller built the value from), so decoding never copies
//! payload bytes.

use std::collections::BTreeMap;
use std::fmt;

/// A bencoded dictionary. Keys are ordered by raw bytes, which is exactly the order canonical
/// bencode writes them in.
pub type Dict<'a> = BTreeMap<&'a [u8], Value<'a>>;

/// One bencode value.
#[derive(Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// `i<digits>e`: a signed 64-bit integer.
    Int(i64),
    /// `<len>:<bytes>`: a byte string, often but not always UTF-8.
    Bytes(&'a [u8]),
    /// `l...e`: a list of values.
    List(Vec<Value<'a>>),
    /// `d...e`: a dictionary with byte-string keys, each key at most once.
    Dict(Dict<'a>),
}

impl<'a> Value<'a> {
    /// Builds a dictionary from `(key, value)` pairs; a later pair replaces an earlier one with
    /// the same key.
    pub fn dict<K, I>(entries: I) -> Self
    where
        K: AsRef<[u8]> + ?Sized + 'a,
        I: IntoIterator<Item = (&'a K, Value<'a>)>,
    {
        Value::Dict(entries.into_iter().map(|(k, v)| (k.as_ref(), v)).collect())
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The byte string as UTF-8, if this is a byte string holding valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.as_bytes()?).ok()
    }

    /// The list items, if this is a list.
    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match self {
            Value::List(items) => Some(items),
            _ => None,
        }
    }

    /// The dictionary, if this is one.
    pub fn as_dict(&self) -> Option<&Dict<'a>> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The value stored under `key`, if this is a dictionary holding that key.
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        self.as_dict()?.get(key)
    }

    /// A short name of the value's type for error messages: "integer", "byte string", "list"
    /// or "dictionary".
    pub fn kind(&self) -> &'static str {
        self.kind_name()
    }

    /// The kind with its article, for messages ("an integer", "a list").
    pub fn kind_with_article(kind: &str) -> String {
        let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
        format!("{article} {kind}")
    }

    fn kind_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "integer",
            Value::Bytes(_) => "byte string",
            Value::List(_) => "list",
            Value::Dict(_) => "dictionary",
        }
    }
}

impl From<i64> for Value<'_> {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}

impl From<u32> for Value<'_> {
    fn from(n: u32) -> Self {
        Value::Int(i64::from(n))
    }
}

impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(b: &'a [u8]) -> Self {
        Value::Bytes(b)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for Value<'a> {
    fn from(b: &'a [u8; N]) -> Self {
        Value::Bytes(b)
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Self {
        Value::Bytes(s.as_bytes())
    }
}

impl<'a> From<Vec<Value<'a>>> for Value<'a> {
    fn from(items: Vec<Value<'a>>) -> Self {
        Value::List(items)
    }
}

impl<'a> From<Dict<'a>> for Value<'a> {
    fn from(d: Dict<'a>) -> Self {
        Value::Dict(d)
    }
}

/// Shows byte strings as escaped text (`b"4:spam"` prints as `"spam"`), which keeps test
/// failures and logs readable.
impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(n) => write!(f, "{n}"),
            Value::Bytes(b) => write!(f, "\"{}\"", b.escape_ascii()),
            Value::List(items) => f.debug_list().entries(items).finish(),
            Value::Dict(d) => f.debug_map().entries(d.iter().map(|(k, v)| (EscapedKey(k), v))).finish(),
        }
    }
}

struct EscapedKey<'a>(&'a [u8]);

impl fmt::Debug for EscapedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_match_variants() {
        let v = Value::dict([("a", Value::Int(1)), ("b", Value::from("text")), ("c", Value::List(vec![]))]);
        assert_eq!(v.get(b"a").and_then(Value::as_int), Some(1));
        assert_eq!(v.get(b"b").and_then(Value::as_str), Some("text"));
        assert_eq!(v.get(b"b").and_then(Value::as_int), None);
        assert_eq!(v.get(b"c").and_then(Value::as_list).map(<[_]>::len), Some(0));
        assert!(v.get(b"zz").is_none());
        assert!(Value::Int(3).get(b"a").is_none());
        assert_eq!(Value::Bytes(&[0xff]).as_str(), None);
        assert_eq!(v.kind(), "dictionary");
    }

    #[test]
    fn debug_escapes_bytes() {
        let v = Value::dict([("k", Value::Bytes(b"\x00a"))]);
        assert_eq!(format!("{v:?}"), r#"{"k": "\x00a"}"#);
    }
}
