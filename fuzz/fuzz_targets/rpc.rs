//! Fuzzes the RPC request parsers (JSON-RPC 2.0, XML-RPC, Transmission RPC) with the same bytes:
//! no input may panic; JSON-RPC errors are parse errors or invalid requests; every request the
//! JSON-RPC and XML-RPC parsers accept goes through the method table; and every value the
//! XML-RPC parser accepts encodes to XML that parses back to the same value (struct members
//! that are null are left out by the encoder).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use shoal_rpc::jsonrpc::{self, INVALID_REQUEST, Incoming, MAX_BATCH, PARSE_ERROR};
use shoal_rpc::method::{Call, Params};
use shoal_rpc::{transmission, xmlrpc};

fn without_null_members(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), without_null_members(v))).collect(),
        ),
        Value::Array(list) => Value::Array(list.iter().map(without_null_members).collect()),
        other => other.clone(),
    }
}

fn method_table(request: Result<jsonrpc::Request, jsonrpc::RequestError>) {
    match request {
        Ok(r) => drop(Call::parse(&r.method, r.params)),
        Err(e) => assert_eq!(e.code, INVALID_REQUEST, "{e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    match jsonrpc::parse_request(data) {
        Ok(Incoming::Single(request)) => method_table(request),
        Ok(Incoming::Batch(requests)) => {
            assert!(!requests.is_empty() && requests.len() <= MAX_BATCH);
            requests.into_iter().for_each(method_table);
        }
        Err(e) => assert!(e.code == PARSE_ERROR || e.code == INVALID_REQUEST, "{e}"),
    }

    if let Ok(call) = xmlrpc::parse_call(data) {
        for param in &call.params {
            let response = xmlrpc::encode_response(param);
            let again = response
                .replace("<methodResponse>", "<methodCall><methodName>x</methodName>")
                .replace("</methodResponse>", "</methodCall>");
            let parsed = xmlrpc::parse_call(again.as_bytes()).expect("an encoded value parses");
            assert_eq!(parsed.params, vec![without_null_members(param)]);
        }
        let params = match call.params.as_slice() {
            [] => Params::None,
            [Value::Object(map)] => Params::ByName(map.clone()),
            _ => Params::ByPosition(call.params.clone()),
        };
        let _ = Call::parse(&call.method, params);
    }

    let _ = transmission::parse_request(data);
});
