//! Bencode (BEP 3): values, a strict decoder for untrusted bytes and a canonical encoder.
//!
//! * [`decode`] turns a complete input into a [`Value`] that borrows every byte string from
//!   the input (no copies). It is strict: the whole input must be consumed, integers must be
//!   canonical (no leading zeros, no `-0`), byte-string lengths are checked against the
//!   remaining input before anything is allocated, nesting is limited to [`MAX_DEPTH`], and a
//!   dictionary may not repeat a key. Unsorted dictionary keys are accepted because real
//!   `.torrent` files contain them.
//! * [`decode_prefix`] decodes one value at the start of the input and reports how many bytes
//!   it used (BEP 9 `ut_metadata` messages carry raw data after their dictionary).
//! * [`decode_with_spans`] and [`dict_value_span`] give the exact input bytes of the values
//!   of a top-level dictionary, so an info-hash can be computed over the `info` dictionary
//!   exactly as received.
//! * [`encode`] writes canonical bencode: dictionary keys in sorted byte order. Values to
//!   encode are built from borrowed parts with the `From` conversions and [`Value::dict`].
//!
//! ```
//! use shoal_bencode::{Value, decode, encode};
//!
//! let v = decode(b"d3:cow3:moo4:spami7ee")?;
//! assert_eq!(v.get(b"cow").and_then(Value::as_str), Some("moo"));
//! assert_eq!(v.get(b"spam").and_then(Value::as_int), Some(7));
//! assert_eq!(encode(&v), b"d3:cow3:moo4:spami7ee");
//!
//! let built = Value::dict([("piece", Value::Int(0)), ("msg_type", Value::Int(0))]);
//! assert_eq!(encode(&built), b"d8:msg_typei0e5:piecei0ee");
//! # Ok::<(), shoal_bencode::DecodeError>(())
//! ```

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod decode;
mod encode;
mod value;

pub use decode::{DecodeError, MAX_DEPTH, Spans, decode, decode_prefix, decode_with_spans, dict_value_span};
pub use encode::{encode, encode_into};
pub use value::{Dict, Value};
