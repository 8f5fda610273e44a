//! Fuzzes what an index server and a searcher read from others: publication records (JSON
//! sent to `POST /publish`, or answered by an index) and the words of a query. No input may
//! panic; a record that checks must encode to JSON that checks again, and a query's FTS5 text
//! is always made of quoted words.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_search::Record;
use shoal_search::index::fts_query;

fuzz_target!(|data: &[u8]| {
    if let Ok((record, publisher)) = Record::from_json(data) {
        let again = serde_json::to_vec(&record).expect("a record encodes");
        assert_eq!(Record::from_json(&again).map(|(_, p)| p).ok(), Some(publisher));
        let _ = record.magnet();
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(q) = fts_query(text)
    {
        // Every word quoted (inner quotes doubled), at most MAX_QUERY_WORDS of them.
        let words = q.split(' ').filter(|w| w.starts_with('"') && (w.ends_with('"') || w.ends_with("\"*"))).count();
        assert!(words >= 1 && words <= shoal_search::index::MAX_QUERY_WORDS, "{q}");
    }
});
