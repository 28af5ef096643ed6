//! hv: see ARCHITECTURE.md.
