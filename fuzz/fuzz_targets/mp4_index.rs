//! Fuzzes the MP4 box walk that locates a streamed file's index from its first bytes (the
//! content of a torrent is anyone's): no input may panic, and an answer is either "in the
//! head" (an empty range at 0) or a range inside the file no longer than `MAX_INDEX`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_swarm::stream::{MAX_INDEX, mp4_index};

fuzz_target!(|data: &[u8]| {
    let (len_bytes, head) = data.split_at(data.len().min(8));
    let mut raw = [0u8; 8];
    raw[..len_bytes.len()].copy_from_slice(len_bytes);
    let file_len = u64::from_le_bytes(raw);
    if let Some(index) = mp4_index(head, file_len) {
        if index.is_empty() {
            assert_eq!(index, 0..0);
        } else {
            assert!(index.start < index.end && index.end <= file_len, "{index:?} in {file_len}");
            assert!(index.end - index.start <= MAX_INDEX);
        }
    }
});
