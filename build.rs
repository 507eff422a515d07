//! Link settings of the policy module.
//!
//! The module's linear memory starts with room for its heap. Rust's wasm32-wasip1 default
//! leaves a few KB between the static data and the end of the initial memory, so every
//! fresh instance grew its memory twice per evaluation (the arena's first chunk and one
//! more page): two `memory.grow` calls, each an mprotect in the host and one more mapping
//! for it to tear down. With 2 MiB (1 MiB of stack, the static data, ~0.9 MiB of heap) a
//! small pod's evaluation never grows memory; untouched pages cost nothing (README,
//! Performance).
const INITIAL_MEMORY_BYTES: u32 = 2 << 20;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo::rustc-link-arg-cdylib=--initial-memory={INITIAL_MEMORY_BYTES}");
    }
}
