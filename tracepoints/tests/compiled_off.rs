//! Built without the `compiled` feature (`cargo test -p tracepoints
//! --no-default-features --features std`): sites generate nothing even when
//! tracing is switched on.
#![cfg(all(feature = "std", not(feature = "compiled")))]

use std::sync::atomic::{AtomicU64, Ordering};

use tracepoints::{tp, Collector, Kind, Record};

#[test]
fn sites_are_gone_even_when_enabled() {
    let c = Collector::install();
    let me = c.current_thread().expect("thread is alive");
    tracepoints::enable();
    assert!(!tracepoints::enabled());
    let built = AtomicU64::new(0);
    for i in 0..100u16 {
        tp!({
            built.fetch_add(1, Ordering::Relaxed);
            Record::new(Kind::Destroy).domain(i)
        });
        assert!(!tracepoints::start().is_set());
    }
    assert_eq!(built.load(Ordering::Relaxed), 0);
    assert!(c.drain().iter().all(|r| r.thread != me));
    assert_eq!(tracepoints::dropped_without_sink(), 0);
}
