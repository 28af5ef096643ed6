//! hv: a minimal hypervisor over `/dev/kvm` in which the ioacct accountant
//! decides every guest I/O (SPEC section 4, `hv/`).
//!
//! Each domain is a KVM VM with its own guest RAM and 1 to
//! [`layout::MAX_VCPUS`] vCPUs, each on its own thread with its own TSS,
//! stacks, trap mailbox, hypercall block and data area (its index in `r9`
//! and from the `VCPU_ID` hypercall), all running a small program assembled in Rust ([`programs`]) in 64-bit long
//! mode at CPL3 (CS `0x1b`, SS/DS `0x23`, the U bit at every paging level,
//! RFLAGS.IOPL = 3, no `hlt`: programs end with an `out` to the done port).
//!
//! # How guest I/O reaches the accountant
//!
//! * **Port I/O** exits ([`exit::Exit::IoIn`]/[`exit::Exit::IoOut`]) are
//!   checked per access by the accountant's lock-free port checker
//!   ([`acct::DomChecker`], bound to the domain): allowed → the device model ([`platform`]); denied →
//!   reads all ones, writes dropped, counted per domain. On PVM (this
//!   project's machines) the platform forces IOPL to 0, so a CPL3 `in`/`out`
//!   raises #GP; the guest's #GP stub hands it to the hypervisor, which
//!   decodes and completes it ([`pvio`]) — the same typed exit, one extra
//!   trip through the emulated ring 0. On VT-x/AMD-V IOPL=3 is honoured and
//!   the instruction exits directly.
//! * **I/O memory** is mapped into the guest directly with KVM memslots (no
//!   exit per access); contiguous frames share a slot, the slot limit is
//!   respected, unmap and teardown delete or split slots before the
//!   operation returns ([`memslot`]). An access to a frame the domain does
//!   not map exits as MMIO and is denied.
//! * **Interrupts** reach every domain bound to the line as pending bits in
//!   its event page (Xen event-channel style), which the guest polls or
//!   blocks on with the `BLOCK` hypercall; where KVM has an in-kernel
//!   irqchip (PVM, VT-x, AMD-V) each binding is also an irqfd on the
//!   domain's VM, so a raise is an interrupt the guest's handler takes
//!   ([`irqchip`]); unbind, revoke, forced grant and destroy deassign it
//!   before they return.
//! * **Hypercalls** ([`hypercall`]): map/unmap I/O memory, bind/unbind lines,
//!   query, block, domid. Hostile arguments get a status code, nothing else.
//!
//! With [`acct::Accounting::Off`] the hypervisor behaves as Xen does today
//! (per-domain permissions, no exclusivity, revocation leaves mappings), so
//! the problem can be shown (`cargo xtask scenario seed`).
//!
//! # Using it, step by step
//!
//! 1. Boot with a Xen-style boot line; the platform's reserved devices come
//!    from it (the default is [`platform::SEED_BOOT`]).
//! 2. Create a domain with a guest program, paused so that grants land
//!    before it runs.
//! 3. Grant it device A's ports and start it; its port accesses now reach
//!    device A, whose per-domain counters are the evidence.
//! 4. Destroy it: every use ends and the VM is gone before the call returns.
//!
//! ```
//! use accountant::{DomId, Mode, Space, UnitRange};
//! use hv::{Config, Hypervisor};
//! use std::time::Duration;
//!
//! if !hv::host::require_kvm("crate example") {
//!     return;
//! }
//! // 1.
//! let hv = Hypervisor::boot(Config { fb_bytes: 16 << 20, ..Config::default() }).unwrap();
//! // 2. Ten `in al, 0x300`, each timed by the guest.
//! let d1 = DomId::new(1).unwrap();
//! let prog = hv::programs::port_loop(0x300, 10).unwrap();
//! hv.create_domain_paused(d1, &prog, hv::layout::DEFAULT_RAM).unwrap();
//! // 3.
//! let ports = UnitRange::new(Space::IoPort, 0x300, 0x307).unwrap();
//! hv.grant(d1, ports, Mode::Exclusive, false).unwrap();
//! hv.start(d1).unwrap();
//! assert_eq!(hv.wait(d1, Duration::from_secs(30)), Some(hv::exit::StopReason::Done(0)));
//! assert_eq!(hv.device_a_counters()[&1].port_reads, 10);
//! // 4.
//! hv.destroy_domain(d1).unwrap();
//! ```
//!
//! # Measuring
//!
//! [`workloads`] returns raw samples (ns) for `cargo xtask bench`: PIO exit
//! round trip with accounting on/off and N framebuffer pages tracked, bind
//! time, forced-revoke time, each beside the bare KVM cost of the same step;
//! interrupt bind/unbind paired with a bare `KVM_IRQFD` ([`workloads::irq`]),
//! exits and revokes with two vCPUs ([`workloads::smp`]) and exits under a
//! live framebuffer load ([`workloads::fb_load`]).
//! [`host::detect`] records whether the host is PVM, VT-x or AMD-V.
//!
//! # Code map
//!
//! * [`Hypervisor`], laid out by concern (`impl Hypervisor` blocks in
//!   private files): `control.rs` — the shared state, boot, grant, revoke,
//!   reserve and the teardowns they return; `domain.rs` — domains, their
//!   vCPUs and counters ([`DomainStats`]), create / start / stop / destroy;
//!   `iomem.rs` — map / unmap through the slot table, stuck-slot isolation,
//!   MMIO fallback, the bare memslot floors; `irq_routing.rs` — line
//!   bindings, their irqfds and delivery to every binder; `dispatch.rs` — the exit
//!   environment and hypercall dispatch; `config.rs`, `error.rs` —
//!   [`Config`], [`HvError`]. Each reaches the shared state through the
//!   methods of the component that owns it (the domain table, the interrupt
//!   lines, the control plane); [`locks`] carries the lock order in the
//!   types.
//! * [`vcpu`] — the thin vCPU loop; [`exit`] — typed exits and the pure
//!   [`exit::handle_exit`].
//! * [`vm`], [`guest`], [`layout`], [`mem`] — building a CPL3 long-mode VM.
//! * [`acct`] — the only module that touches the accountant's API.
//! * [`irqchip`] — KVM irqchip, GSI routing, irqfd assign / deassign from
//!   a pool of ready eventfds;
//!   `kvm_slots` — the KVM memslot back end of [`memslot`]'s slot table.
//! * [`exec`] — the hypervisor as a back end of the accountant's one trace
//!   executor (`cargo xtask scenario trace`).

#![deny(missing_docs)]

pub mod acct;
pub mod affinity;
mod config;
mod control;
mod dispatch;
mod domain;
mod error;
pub mod exec;
pub mod exit;
mod frame_map;
pub mod guest;
pub mod host;
pub mod hypercall;
pub mod inflight;
mod iomem;
mod irq_routing;
pub mod irqchip;
mod kvm_slots;
pub mod layout;
pub mod locks;
pub mod mem;
pub mod memslot;
pub mod platform;
pub mod programs;
pub mod pvio;
mod sync;
pub mod vcpu;
pub mod vm;
pub mod workloads;

pub use config::Config;
pub use control::Hypervisor;
pub use domain::DomainStats;
pub use error::HvError;
pub use irq_routing::DOORBELL_LINE;
