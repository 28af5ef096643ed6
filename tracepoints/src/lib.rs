//! tracepoints: see ARCHITECTURE.md.
