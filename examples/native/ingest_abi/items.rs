//! A native reader with the dativo-ingest ABI, in Rust with the standard library only.
//!
//! Dativo runs it unchanged as `plugin: path/to/libitems.so:create_reader`: the sandbox
//! worker loads the library, passes `source.config` as JSON to `create_reader`, and turns
//! each JSON batch `extract_batch` returns into Arrow. Build it with
//!
//!     rustc --edition 2021 --crate-type cdylib -O -o libitems.so items.rs
//!
//! A real plugin parses its config with serde_json; this example has no crate registry, so
//! it reads its two integer settings by hand.
//!
//! Config: `count` (required, >= 0) records with ids 0..count, `batch_size` per batch (100).

use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::ptr;

pub struct Items {
    next: i64,
    end: i64,
    batch_size: i64,
}

/// The integer after `"key":` in a JSON object, if there is one.
fn int_setting(config: &str, key: &str) -> Option<i64> {
    let quoted = format!("\"{}\"", key);
    let after = &config[config.find(&quoted)? + quoted.len()..];
    let value = after.trim_start().strip_prefix(':')?.trim_start();
    let end = value
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
        .map_or(value.len(), |(i, _)| i);
    value[..end].parse().ok()
}

/// Make a reader from the JSON config; NULL (and a message on stderr) when it is refused.
///
/// # Safety
/// `config_json` must be NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn create_reader(config_json: *const c_char) -> *mut Items {
    if config_json.is_null() {
        return ptr::null_mut();
    }
    let config = match CStr::from_ptr(config_json).to_str() {
        Ok(text) => text,
        Err(_) => return ptr::null_mut(),
    };
    let end = match int_setting(config, "count") {
        Some(count) if count >= 0 => count,
        _ => {
            eprintln!("items: the config needs 'count', a non-negative integer");
            return ptr::null_mut();
        }
    };
    let batch_size = int_setting(config, "batch_size").unwrap_or(100);
    if batch_size <= 0 {
        eprintln!("items: 'batch_size' must be positive");
        return ptr::null_mut();
    }
    Box::into_raw(Box::new(Items { next: 0, end, batch_size }))
}

/// The next batch as a JSON array of records, or NULL when done. Free it with `free_string`.
///
/// # Safety
/// `reader` must come from `create_reader`.
#[no_mangle]
pub unsafe extern "C" fn extract_batch(reader: *mut Items) -> *const c_char {
    let Some(reader) = reader.as_mut() else { return ptr::null() };
    if reader.next >= reader.end {
        return ptr::null();
    }
    let stop = (reader.next + reader.batch_size).min(reader.end);
    let records: Vec<String> = (reader.next..stop)
        .map(|i| {
            format!(
                "{{\"id\":{},\"name\":\"item {}\",\"price\":{:.2},\"active\":{}}}",
                i,
                i,
                i as f64 * 1.5,
                i % 2 == 0
            )
        })
        .collect();
    reader.next = stop;
    match CString::new(format!("[{}]", records.join(","))) {
        Ok(text) => text.into_raw(),
        Err(_) => ptr::null(),
    }
}

/// Free a batch returned by `extract_batch`.
///
/// # Safety
/// `text` must be NULL or come from `extract_batch`, and be freed once.
#[no_mangle]
pub unsafe extern "C" fn free_string(text: *mut c_char) {
    if !text.is_null() {
        drop(CString::from_raw(text));
    }
}

/// Free a reader made by `create_reader`.
///
/// # Safety
/// `reader` must be NULL or come from `create_reader`, and be freed once.
#[no_mangle]
pub unsafe extern "C" fn free_reader(reader: *mut Items) {
    if !reader.is_null() {
        drop(Box::from_raw(reader));
    }
}
