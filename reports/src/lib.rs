//! reports: see ARCHITECTURE.md.
