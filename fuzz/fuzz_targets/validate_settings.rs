//! Raw bytes as the `validate_settings` payload: valid or a message, never a panic; and
//! settings accepted here never make `validate` fail to parse them.
#![no_main]
use cwii_kubewarden::admission::validate_settings;
use cwii_kubewarden::providers;
use cwii_kubewarden::settings::Settings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let response = validate_settings(data);
    assert_eq!(response.valid, response.message.is_none());
    if response.valid {
        assert!(Settings::from_slice(data, providers::all()).is_ok());
    }
});
