//! Diagnostics on stderr. stdout carries only the AdmissionResponse line (or bench
//! results), so scripts can pipe it to `jq`.

use std::fmt::Display;

pub fn error(message: impl Display) {
    eprintln!("ERROR kwrun: {message}");
}

pub fn warn(message: impl Display) {
    eprintln!("WARN kwrun: {message}");
}

pub fn info(message: impl Display) {
    eprintln!("INFO kwrun: {message}");
}
