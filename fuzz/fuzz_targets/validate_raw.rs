//! Raw bytes as the `validate` payload: must always produce a response, never panic.
#![no_main]
use cwii_kubewarden::admission::evaluate;
use cwii_kubewarden::lookup::InMemoryLookup;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lookup = InMemoryLookup::new().with(
        "Namespace",
        None,
        "apps",
        &[("cwii.dev/az-inject", "true"), ("cwii.dev/az-tenant-id", "t")],
        &[],
    );
    let response = evaluate(data, &mut lookup);
    // Every response serialises (this is what the wasm export returns).
    let _ = serde_json::to_vec(&response).unwrap();
});
