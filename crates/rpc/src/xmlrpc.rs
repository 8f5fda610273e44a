//! XML-RPC (<http://xmlrpc.com/spec.md>) over the [`crate::method`] table, with the same method
//! names as JSON-RPC.
//!
//! Flow: [`parse_call`] turns a `methodCall` document into a method name and parameters as
//! [`serde_json::Value`]s (pure), [`handle`] runs it against the [`Api`] and answers with a
//! `methodResponse` ([`encode_response`]) or a fault ([`encode_fault`]).
//!
//! Values: `string` (and untyped text), `int`/`i4`/`i8`, `boolean`, `double`, `base64` (kept as
//! base64 text, which is what `torrent.add`'s `torrent` parameter takes), `dateTime.iso8601`
//! (kept as its text), `struct`, `array` and the `nil` extension. Parameters: none, one
//! `struct` (parameters by name), or several values (by position, see [`crate::method`]).
//! Answers encode integers outside the 32-bit range as `i8` (Python's `xmlrpc.client` and
//! Apache's read it), leave out `null` struct members and write a `null` elsewhere as `nil`.
//!
//! Faults use the codes of the XML-RPC fault code interoperability convention, the same as
//! JSON-RPC's: -32700 not well-formed, -32600 not a valid `methodCall`, -32601 unknown method,
//! -32602 invalid params, and the [`crate::jsonrpc`] server codes for [`Api`] errors.
//!
//! The XML is lexed by `quick-xml`, a well kept, fast pull parser that gets the fiddly parts of
//! XML right (entities, character references, CDATA, comments, end-tag matching) without any DTD
//! processing; this module adds the small XML-RPC grammar on top. Documents with a `DOCTYPE`
//! are refused (no entity declarations, so no entity expansion attacks), nesting is bounded by
//! [`MAX_DEPTH`], and the HTTP layer bounds the body size.

use std::collections::VecDeque;
use std::fmt::Write as _;

use base64::Engine as _;
use quick_xml::Reader;
use quick_xml::events::Event;
use serde_json::{Map, Number, Value};

use crate::api::Api;
use crate::jsonrpc::{INVALID_REQUEST, PARSE_ERROR, api_error_code, call_error_code};
use crate::method::{self, Call, Params, decode_base64};

/// Deepest nesting of arrays and structs accepted in a call.
pub const MAX_DEPTH: usize = 32;
/// Longest method name accepted.
pub const MAX_METHOD_NAME: usize = 256;

/// A parsed `methodCall`.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodCall {
    /// The method name.
    pub method: String,
    /// The parameters, in order.
    pub params: Vec<Value>,
}

/// Why a body is not an acceptable `methodCall`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// The body is not UTF-8.
    #[error("the body is not UTF-8 text")]
    NotUtf8,
    /// The body is not well-formed XML.
    #[error("not well-formed XML: {0}")]
    Malformed(String),
    /// Well-formed XML that is not an XML-RPC `methodCall` (the message says where).
    #[error("not an XML-RPC methodCall: {0}")]
    Invalid(String),
    /// Arrays and structs nested deeper than [`MAX_DEPTH`].
    #[error("values nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

impl XmlError {
    /// The fault code for this error.
    pub fn fault_code(&self) -> i32 {
        match self {
            XmlError::NotUtf8 | XmlError::Malformed(_) => PARSE_ERROR,
            XmlError::Invalid(_) | XmlError::TooDeep => INVALID_REQUEST,
        }
    }
}

fn invalid(message: impl Into<String>) -> XmlError {
    XmlError::Invalid(message.into())
}

fn malformed(e: impl std::fmt::Display) -> XmlError {
    XmlError::Malformed(e.to_string())
}

/// The events of the grammar: text pieces (text, CDATA, references) come merged.
#[derive(Clone, Debug, PartialEq)]
enum Ev {
    Start(String),
    End(String),
    Text(String),
    Eof,
}

impl Ev {
    fn describe(&self) -> String {
        match self {
            Ev::Start(n) => format!("<{n}>"),
            Ev::End(n) => format!("</{n}>"),
            Ev::Text(t) => format!("text {:?}", t.chars().take(40).collect::<String>()),
            Ev::Eof => "the end of the document".to_owned(),
        }
    }
}

enum Raw {
    Ev(Ev),
    Text(String),
}

struct Lexer<'a> {
    reader: Reader<&'a [u8]>,
    pending: VecDeque<Ev>,
}

fn name_of(bytes: &[u8]) -> Result<String, XmlError> {
    std::str::from_utf8(bytes).map(str::to_owned).map_err(|_| XmlError::NotUtf8)
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Lexer<'a> {
        let mut reader = Reader::from_str(text);
        let config = reader.config_mut();
        config.expand_empty_elements = true;
        config.check_end_names = true;
        Lexer { reader, pending: VecDeque::new() }
    }

    fn raw(&mut self) -> Result<Raw, XmlError> {
        loop {
            let ev = match self.reader.read_event().map_err(malformed)? {
                Event::Start(e) => Ev::Start(name_of(e.local_name().as_ref())?),
                Event::End(e) => Ev::End(name_of(e.local_name().as_ref())?),
                Event::Empty(e) => Ev::Start(name_of(e.local_name().as_ref())?),
                Event::Text(t) => return Ok(Raw::Text(t.xml10_content().map_err(malformed)?.into_owned())),
                Event::CData(c) => return Ok(Raw::Text(c.decode().map_err(malformed)?.into_owned())),
                Event::GeneralRef(r) => {
                    if let Some(c) = r.resolve_char_ref().map_err(malformed)? {
                        return Ok(Raw::Text(c.to_string()));
                    }
                    let name = r.decode().map_err(malformed)?;
                    let text = quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| malformed(format!("unknown entity &{name};")))?;
                    return Ok(Raw::Text(text.to_owned()));
                }
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) => continue,
                Event::DocType(_) => return Err(invalid("a DOCTYPE is not allowed")),
                Event::Eof => Ev::Eof,
            };
            return Ok(Raw::Ev(ev));
        }
    }

    fn next(&mut self) -> Result<Ev, XmlError> {
        if let Some(ev) = self.pending.pop_front() {
            return Ok(ev);
        }
        let mut text = match self.raw()? {
            Raw::Ev(ev) => return Ok(ev),
            Raw::Text(t) => t,
        };
        loop {
            match self.raw()? {
                Raw::Text(t) => text.push_str(&t),
                Raw::Ev(ev) => {
                    self.pending.push_back(ev);
                    if let Some(c) = text.chars().find(|&c| !xml_char(c)) {
                        return Err(malformed(format!("character U+{:04X} is not allowed in XML", u32::from(c))));
                    }
                    return Ok(Ev::Text(text));
                }
            }
        }
    }

    /// The next event that is not whitespace-only text.
    fn next_skip_ws(&mut self) -> Result<Ev, XmlError> {
        loop {
            match self.next()? {
                Ev::Text(t) if t.trim().is_empty() => continue,
                Ev::Text(t) => return Err(invalid(format!("unexpected text {:?}", t.trim()))),
                ev => return Ok(ev),
            }
        }
    }

    fn expect_start(&mut self, name: &str) -> Result<(), XmlError> {
        match self.next_skip_ws()? {
            Ev::Start(n) if n == name => Ok(()),
            other => Err(invalid(format!("expected <{name}>, found {}", other.describe()))),
        }
    }

    fn expect_end(&mut self, name: &str) -> Result<(), XmlError> {
        match self.next_skip_ws()? {
            Ev::End(n) if n == name => Ok(()),
            other => Err(invalid(format!("expected </{name}>, found {}", other.describe()))),
        }
    }

    /// The text of an element whose start tag was just read, through its end tag.
    fn text_until_end(&mut self, name: &str) -> Result<String, XmlError> {
        let text = match self.next()? {
            Ev::Text(t) => t,
            Ev::End(n) if n == name => return Ok(String::new()),
            other => return Err(invalid(format!("expected text in <{name}>, found {}", other.describe()))),
        };
        match self.next()? {
            Ev::End(n) if n == name => Ok(text),
            other => Err(invalid(format!("expected </{name}>, found {}", other.describe()))),
        }
    }

    /// A value whose `<value>` start tag was just read, through `</value>`.
    fn value(&mut self, depth: usize) -> Result<Value, XmlError> {
        if depth > MAX_DEPTH {
            return Err(XmlError::TooDeep);
        }
        match self.next()? {
            Ev::End(n) if n == "value" => Ok(Value::String(String::new())),
            Ev::Text(text) => match self.next()? {
                Ev::End(n) if n == "value" => Ok(Value::String(text)),
                Ev::Start(tag) if text.trim().is_empty() => {
                    let v = self.typed(&tag, depth)?;
                    self.expect_end("value")?;
                    Ok(v)
                }
                other => Err(invalid(format!("unexpected {} after text in <value>", other.describe()))),
            },
            Ev::Start(tag) => {
                let v = self.typed(&tag, depth)?;
                self.expect_end("value")?;
                Ok(v)
            }
            other => Err(invalid(format!("unexpected {} in <value>", other.describe()))),
        }
    }

    /// The typed content of a `<value>` whose type tag `tag` was just read, through its end tag.
    fn typed(&mut self, tag: &str, depth: usize) -> Result<Value, XmlError> {
        Ok(match tag {
            "string" | "dateTime.iso8601" => Value::String(self.text_until_end(tag)?),
            "int" | "i4" | "i8" => {
                let text = self.text_until_end(tag)?;
                let n: i64 =
                    text.trim().parse().map_err(|_| invalid(format!("<{tag}> holds {text:?}, not an integer")))?;
                Value::from(n)
            }
            "boolean" => match self.text_until_end(tag)?.trim() {
                "0" => Value::Bool(false),
                "1" => Value::Bool(true),
                other => return Err(invalid(format!("<boolean> holds {other:?}, not 0 or 1"))),
            },
            "double" => {
                let text = self.text_until_end(tag)?;
                let n = text
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .and_then(Number::from_f64)
                    .ok_or_else(|| invalid(format!("<double> holds {text:?}, not a finite number")))?;
                Value::Number(n)
            }
            "base64" => {
                let text = self.text_until_end(tag)?;
                let bytes = decode_base64(&text).ok_or_else(|| invalid("<base64> holds text that is not base64"))?;
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
            "nil" => {
                self.expect_end("nil")?;
                Value::Null
            }
            "struct" => {
                let mut map = Map::new();
                loop {
                    match self.next_skip_ws()? {
                        Ev::End(n) if n == "struct" => break,
                        Ev::Start(n) if n == "member" => {
                            self.expect_start("name")?;
                            let name = self.text_until_end("name")?;
                            self.expect_start("value")?;
                            let value = self.value(depth + 1)?;
                            self.expect_end("member")?;
                            if map.insert(name.clone(), value).is_some() {
                                return Err(invalid(format!("struct member {name:?} appears twice")));
                            }
                        }
                        other => return Err(invalid(format!("expected <member>, found {}", other.describe()))),
                    }
                }
                Value::Object(map)
            }
            "array" => {
                self.expect_start("data")?;
                let mut list = Vec::new();
                loop {
                    match self.next_skip_ws()? {
                        Ev::End(n) if n == "data" => break,
                        Ev::Start(n) if n == "value" => list.push(self.value(depth + 1)?),
                        other => return Err(invalid(format!("expected <value>, found {}", other.describe()))),
                    }
                }
                self.expect_end("array")?;
                Value::Array(list)
            }
            other => return Err(invalid(format!("unknown value type <{other}>"))),
        })
    }
}

/// Parses a `methodCall` document.
pub fn parse_call(body: &[u8]) -> Result<MethodCall, XmlError> {
    let text = std::str::from_utf8(body).map_err(|_| XmlError::NotUtf8)?;
    let mut lx = Lexer::new(text);
    lx.expect_start("methodCall")?;
    lx.expect_start("methodName")?;
    let method = lx.text_until_end("methodName")?.trim().to_owned();
    let name_ok = !method.is_empty()
        && method.len() <= MAX_METHOD_NAME
        && method.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:/".contains(&b));
    if !name_ok {
        return Err(invalid(format!("bad method name {:?}", method.chars().take(80).collect::<String>())));
    }
    let mut params = Vec::new();
    match lx.next_skip_ws()? {
        Ev::End(n) if n == "methodCall" => {}
        Ev::Start(n) if n == "params" => {
            loop {
                match lx.next_skip_ws()? {
                    Ev::End(n) if n == "params" => break,
                    Ev::Start(n) if n == "param" => {
                        lx.expect_start("value")?;
                        params.push(lx.value(1)?);
                        lx.expect_end("param")?;
                    }
                    other => return Err(invalid(format!("expected <param>, found {}", other.describe()))),
                }
            }
            lx.expect_end("methodCall")?;
        }
        other => return Err(invalid(format!("expected <params>, found {}", other.describe()))),
    }
    match lx.next_skip_ws()? {
        Ev::Eof => Ok(MethodCall { method, params }),
        other => Err(invalid(format!("unexpected {} after </methodCall>", other.describe()))),
    }
}

/// True for the characters XML 1.0 can carry (its `Char` production).
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Writes `text` escaped for XML 1.0; characters XML 1.0 cannot carry become U+FFFD.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c if !xml_char(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

fn write_value(out: &mut String, value: &Value) {
    out.push_str("<value>");
    match value {
        Value::Null => out.push_str("<nil/>"),
        Value::Bool(b) => out.push_str(if *b { "<boolean>1</boolean>" } else { "<boolean>0</boolean>" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                let tag = if i32::try_from(i).is_ok() { "int" } else { "i8" };
                let _ = write!(out, "<{tag}>{i}</{tag}>");
            } else if let Some(u) = n.as_u64() {
                let _ = write!(out, "<i8>{u}</i8>");
            } else {
                let _ = write!(out, "<double>{}</double>", n.as_f64().unwrap_or(0.0));
            }
        }
        Value::String(s) => {
            out.push_str("<string>");
            escape_into(out, s);
            out.push_str("</string>");
        }
        Value::Array(list) => {
            out.push_str("<array><data>");
            for item in list {
                write_value(out, item);
            }
            out.push_str("</data></array>");
        }
        Value::Object(map) => {
            out.push_str("<struct>");
            for (name, item) in map.iter().filter(|(_, v)| !v.is_null()) {
                out.push_str("<member><name>");
                escape_into(out, name);
                out.push_str("</name>");
                write_value(out, item);
                out.push_str("</member>");
            }
            out.push_str("</struct>");
        }
    }
    out.push_str("</value>");
}

/// A `methodResponse` carrying `value`.
pub fn encode_response(value: &Value) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodResponse><params><param>");
    write_value(&mut out, value);
    out.push_str("</param></params></methodResponse>\n");
    out
}

/// A `methodResponse` carrying a fault.
pub fn encode_fault(code: i32, message: &str) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodResponse><fault>");
    let fault = Value::Object(Map::from_iter([
        ("faultCode".to_owned(), Value::from(code)),
        ("faultString".to_owned(), Value::from(message)),
    ]));
    write_value(&mut out, &fault);
    out.push_str("</fault></methodResponse>\n");
    out
}

/// Parameters as the method table takes them: one struct is by name.
fn params_of(mut params: Vec<Value>) -> Params {
    match params.len() {
        0 => Params::None,
        1 if params[0].is_object() => match params.pop() {
            Some(Value::Object(map)) => Params::ByName(map),
            _ => Params::None,
        },
        _ => Params::ByPosition(params),
    }
}

/// Answers an XML-RPC body with a `methodResponse` (a fault on any error).
pub async fn handle<A: Api>(api: &A, body: &[u8]) -> String {
    let call = match parse_call(body) {
        Ok(c) => c,
        Err(e) => return encode_fault(e.fault_code(), &e.to_string()),
    };
    let call = match Call::parse(&call.method, params_of(call.params)) {
        Ok(c) => c,
        Err(e) => return encode_fault(call_error_code(&e), &e.to_string()),
    };
    match method::execute(api, call).await {
        Ok(value) => encode_response(&value),
        Err(e) => encode_fault(api_error_code(&e), &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::Fake;
    use serde_json::json;

    fn call_xml(method: &str, params: &str) -> String {
        format!(
            "<?xml version='1.0'?>\n<methodCall>\n<methodName>{method}</methodName>\n<params>{params}</params>\n</methodCall>\n"
        )
    }

    #[test]
    fn parses_every_value_type() {
        let body = call_xml(
            "torrent.get",
            "<param><value><struct>\
               <member><name>s</name><value><string>a &amp; b &#x41;<![CDATA[<c>]]></string></value></member>\
               <member><name>plain</name><value> untyped </value></member>\
               <member><name>empty</name><value/></member>\
               <member><name>i</name><value><i4>-7</i4></value></member>\
               <member><name>big</name><value><i8>8589934592</i8></value></member>\
               <member><name>n</name><value><int> 3 </int></value></member>\
               <member><name>t</name><value><boolean>1</boolean></value></member>\
               <member><name>d</name><value><double>2.5</double></value></member>\
               <member><name>b</name><value><base64>aGVs\nbG8=</base64></value></member>\
               <member><name>when</name><value><dateTime.iso8601>20240101T00:00:00</dateTime.iso8601></value></member>\
               <member><name>none</name><value><ex:nil/></value></member>\
               <member><name>list</name><value><array><data><value><int>1</int></value><value>x</value></data></array></value></member>\
               <member><name>nothing</name><value><array><data/></array></value></member>\
             </struct></value></param><param><value><string/></value></param>",
        );
        let call = parse_call(body.as_bytes()).expect("works");
        assert_eq!(call.method, "torrent.get");
        assert_eq!(
            call.params,
            vec![
                json!({
                    "s": "a & b A<c>", "plain": " untyped ", "empty": "", "i": -7, "big": 8589934592i64, "n": 3,
                    "t": true, "d": 2.5, "b": "aGVsbG8=", "when": "20240101T00:00:00", "none": null,
                    "list": [1, "x"], "nothing": []
                }),
                json!("")
            ]
        );
        let no_params = "<methodCall><methodName>system.listMethods</methodName></methodCall>";
        assert_eq!(parse_call(no_params.as_bytes()).expect("works").params, Vec::<Value>::new());
    }

    #[test]
    fn refuses_bad_documents() {
        let deep = format!(
            "{}{}",
            "<value><array><data>".repeat(MAX_DEPTH + 2),
            "</data></array></value>".repeat(MAX_DEPTH + 2)
        );
        let cases: Vec<(String, i32)> = vec![
            ("not xml at all".into(), INVALID_REQUEST),
            ("<methodCall><methodName>x</methodName>".into(), INVALID_REQUEST),
            ("<methodCall><methodName>x</methodNam></methodCall>".into(), PARSE_ERROR),
            (call_xml("x", "<param><value><int>1.5</int></value></param>"), INVALID_REQUEST),
            (call_xml("x", "<param><value><boolean>yes</boolean></value></param>"), INVALID_REQUEST),
            (call_xml("x", "<param><value><double>nan</double></value></param>"), INVALID_REQUEST),
            (call_xml("x", "<param><value><base64>***</base64></value></param>"), INVALID_REQUEST),
            (call_xml("x", "<param><value><float>1</float></value></param>"), INVALID_REQUEST),
            (call_xml("x", "<param><value>a<int>1</int></value></param>"), INVALID_REQUEST),
            (call_xml("x", "<param><value><string>&bogus;</string></value></param>"), PARSE_ERROR),
            (call_xml("x", "<param><value><string>a&#1;</string></value></param>"), PARSE_ERROR),
            (call_xml("x", "<param><value><string>a\u{1}</string></value></param>"), PARSE_ERROR),
            (call_xml("x", &format!("<param>{deep}</param>")), INVALID_REQUEST),
            (call_xml("bad name!", ""), INVALID_REQUEST),
            (
                call_xml(
                    "x",
                    "<param><value><struct><member><name>a</name><value>1</value></member><member><name>a</name><value>2</value></member></struct></value></param>",
                ),
                INVALID_REQUEST,
            ),
            (
                "<!DOCTYPE x [<!ENTITY a \"b\">]><methodCall><methodName>x</methodName></methodCall>".into(),
                INVALID_REQUEST,
            ),
            (format!("{}<extra/>", call_xml("x", "")), INVALID_REQUEST),
        ];
        for (body, code) in cases {
            let err = parse_call(body.as_bytes()).expect_err(&body);
            assert_eq!(err.fault_code(), code, "{body}: {err}");
        }
        assert_eq!(parse_call(&[0xff, 0xfe]), Err(XmlError::NotUtf8));
        let too_deep = call_xml("x", &format!("<param>{deep}</param>"));
        assert_eq!(parse_call(too_deep.as_bytes()), Err(XmlError::TooDeep));
    }

    #[test]
    fn encodes_values_and_faults() {
        let out = encode_response(
            &json!({"a": 1, "big": 5_000_000_000u64, "gone": null, "s": "<&>\u{1}", "l": [true, null, 0.5]}),
        );
        assert!(out.contains("<member><name>a</name><value><int>1</int></value></member>"), "{out}");
        assert!(out.contains("<i8>5000000000</i8>"), "{out}");
        assert!(!out.contains("gone"), "{out}");
        assert!(out.contains("<string>&lt;&amp;&gt;\u{FFFD}</string>"), "{out}");
        assert!(out.contains("<array><data><value><boolean>1</boolean></value><value><nil/></value><value><double>0.5</double></value></data></array>"), "{out}");
        let fault = encode_fault(-32601, "no <such> method");
        assert!(fault.contains("<fault><value><struct><member><name>faultCode</name><value><int>-32601</int></value></member><member><name>faultString</name><value><string>no &lt;such&gt; method</string></value></member></struct></value></fault>"), "{fault}");
    }

    #[tokio::test]
    async fn dispatches_with_the_json_rpc_names() {
        let fake = Fake::with_torrents(2);
        let out = handle(&fake, call_xml("system.listMethods", "").as_bytes()).await;
        assert!(out.contains("<string>torrent.add</string>") && !out.contains("<fault>"), "{out}");

        let out = handle(
            &fake,
            call_xml(
                "torrent.pause",
                "<param><value><array><data><value><int>2</int></value></data></array></value></param>",
            )
            .as_bytes(),
        )
        .await;
        assert!(out.contains("<int>2</int>") && !out.contains("<fault>"), "{out}");
        assert_eq!(fake.state_of(2), crate::api::TorrentState::Paused);

        let torrent = base64::engine::general_purpose::STANDARD.encode(b"d4:infod4:name1:xee");
        let add = format!(
            "<param><value><struct><member><name>torrent</name><value><base64>{torrent}</base64></value></member><member><name>paused</name><value><boolean>1</boolean></value></member></struct></value></param>"
        );
        let out = handle(&fake, call_xml("torrent.add", &add).as_bytes()).await;
        assert!(out.contains("<name>duplicate</name><value><boolean>0</boolean>"), "{out}");
        assert_eq!(fake.count(), 3);

        let before = fake.snapshot();
        for (body, code) in [
            ("<methodCall>".to_owned(), "-32600"),
            ("<methodCall><methodName>x</methodNam>".to_owned(), "-32700"),
            (call_xml("torrent.frobnicate", ""), "-32601"),
            (call_xml("torrent.pause", "<param><value><boolean>1</boolean></value></param>"), "-32602"),
            (call_xml("torrent.remove", "<param><value><int>42</int></value></param>"), "-32001"),
        ] {
            let out = handle(&fake, body.as_bytes()).await;
            assert!(out.contains(&format!("<name>faultCode</name><value><int>{code}</int>")), "{body} -> {out}");
        }
        assert_eq!(fake.snapshot(), before);
    }
}
