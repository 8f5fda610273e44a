//! The canonical bencode encoder (BEP 3): integers in shortest form, dictionary keys in sorted
//! raw-byte order (guaranteed by [`crate::Dict`] being a `BTreeMap`). Encoding a value that
//! came from canonical input reproduces that input byte for byte.

use crate::value::Value;

/// Encodes a value into a new buffer.
pub fn encode(value: &Value<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

/// Appends the encoding of a value to `out`.
pub fn encode_into(value: &Value<'_>, out: &mut Vec<u8>) {
    match value {
        Value::Int(n) => {
            out.push(b'i');
            push_decimal(out, *n);
            out.push(b'e');
        }
        Value::Bytes(b) => push_bytes(out, b),
        Value::List(items) => {
            out.push(b'l');
            for item in items {
                encode_into(item, out);
            }
            out.push(b'e');
        }
        Value::Dict(dict) => {
            out.push(b'd');
            for (key, item) in dict {
                push_bytes(out, key);
                encode_into(item, out);
            }
            out.push(b'e');
        }
    }
}

fn push_bytes(out: &mut Vec<u8>, b: &[u8]) {
    push_decimal(out, b.len() as i64);
    out.push(b':');
    out.extend_from_slice(b);
}

fn push_decimal(out: &mut Vec<u8>, n: i64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::decode::decode;

    #[test]
    fn writes_sorted_keys_and_shortest_integers() {
        let v = Value::dict([
            ("zeta", Value::Int(-12)),
            ("alpha", Value::List(vec![Value::Int(0), Value::from("x")])),
            ("mid", Value::Int(i64::MIN)),
        ]);
        assert_eq!(encode(&v), b"d5:alphali0e1:xe3:midi-9223372036854775808e4:zetai-12ee");
    }

    #[test]
    fn unsorted_input_is_canonicalised() {
        let v = decode(b"d1:bi1e1:ai2ee").expect("valid");
        assert_eq!(encode(&v), b"d1:ai2e1:bi1ee");
    }

    /// Owned mirror of [`Value`] so proptest can generate trees.
    #[derive(Clone, Debug)]
    enum Tree {
        Int(i64),
        Bytes(Vec<u8>),
        List(Vec<Tree>),
        Dict(BTreeMap<Vec<u8>, Tree>),
    }

    impl Tree {
        fn value(&self) -> Value<'_> {
            match self {
                Tree::Int(n) => Value::Int(*n),
                Tree::Bytes(b) => Value::Bytes(b),
                Tree::List(items) => Value::List(items.iter().map(Tree::value).collect()),
                Tree::Dict(d) => Value::Dict(d.iter().map(|(k, v)| (k.as_slice(), v.value())).collect()),
            }
        }
    }

    fn tree() -> impl Strategy<Value = Tree> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Tree::Int),
            proptest::collection::vec(any::<u8>(), 0..12).prop_map(Tree::Bytes),
        ];
        leaf.prop_recursive(6, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Tree::List),
                proptest::collection::btree_map(proptest::collection::vec(any::<u8>(), 0..6), inner, 0..6)
                    .prop_map(Tree::Dict),
            ]
        })
    }

    proptest! {
        #[test]
        fn roundtrip_value(t in tree()) {
            let v = t.value();
            let bytes = encode(&v);
            let back = decode(&bytes).expect("encoder output decodes");
            prop_assert_eq!(&back, &v);
            prop_assert_eq!(encode(&back), bytes);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(v) = decode(&bytes) {
                // Whatever decodes must re-decode to the same value after encoding.
                let again = encode(&v);
                prop_assert_eq!(decode(&again).expect("canonical"), v);
            }
        }

        #[test]
        fn decode_never_panics_on_bencode_like_bytes(
            bytes in proptest::collection::vec(
                prop_oneof![Just(b'i'), Just(b'l'), Just(b'd'), Just(b'e'), Just(b':'),
                            Just(b'-'), Just(b'0'), Just(b'1'), Just(b'2'), any::<u8>()],
                0..128,
            )
        ) {
            let _ = decode(&bytes);
            let _ = crate::decode::decode_prefix(&bytes);
            let _ = crate::decode::dict_value_span(&bytes, b"1");
        }
    }
}
