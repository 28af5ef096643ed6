//! The lock order of hv's shared state, carried by the types.
//!
//! Every lock of the shared state sits at a [`Level`]; locking one takes a
//! [`Token`] of a level that may be held when it is taken ([`Before`]) and
//! borrows that token mutably for as long as the guard lives. The guard
//! lends out a token of its own level for the next lock down. So, inside
//! one call chain, a lock can only be taken after the locks above it, and a
//! lock above one already held cannot be taken at all: the only token that
//! could take it is borrowed by the guard. A thread's chain starts from
//! [`Token::root`] at its entry point (a public method of
//! [`crate::Hypervisor`], a vCPU thread's exit environment); a function that
//! must not run with any lock held (it waits for a vCPU that may be waiting
//! for the control plane) takes the root token itself.
//!
//! The order (outer first): [`ControlPlane`] (the accountant and each
//! domain's slot table) → [`IrqLines`] (line bindings); a vCPU raising a
//! line takes the irq table alone. The domain table is locked only inside
//! the methods of the component that owns it, which take no other lock, so
//! it nests inside anything; the methods that change it take a
//! `Token<ControlPlane>` — the proof that the control plane is held, which
//! keeps the accountant and the table it mirrors in step. Leaf locks like
//! these (a domain's wake counter, a vCPU's thread handle) are locked
//! through [`leaf()`], [`read()`] and [`write()`].
//!
//! Poisoning is handled here and only here: every structure behind these
//! locks is updated in single steps that keep it consistent, so a panic on
//! another thread does not make it unusable, and the lock is taken anyway.
//!
//! In order, it compiles:
//!
//! ```
//! use hv::locks::{ControlPlane, IrqLines, Ordered, Token};
//! let cp = Ordered::<ControlPlane, u32>::new(1);
//! let irqs = Ordered::<IrqLines, u32>::new(2);
//! let mut root = Token::root();
//! let mut acct = cp.lock(&mut root);
//! let lines = irqs.lock(acct.token());
//! assert_eq!(*lines, 2);
//! drop(lines);
//! *acct += 1;
//! ```
//!
//! The control plane taken while the irq table is held does not:
//! `IrqLines` is not [`Before`] `ControlPlane`.
//!
//! ```compile_fail
//! use hv::locks::{ControlPlane, IrqLines, Ordered, Token};
//! let cp = Ordered::<ControlPlane, u32>::new(1);
//! let irqs = Ordered::<IrqLines, u32>::new(2);
//! let mut root = Token::root();
//! let mut lines = irqs.lock(&mut root);
//! let acct = cp.lock(lines.token());
//! ```
//!
//! Nor does going round the order with the root token while a guard from it
//! lives (the guard borrows the root):
//!
//! ```compile_fail
//! use hv::locks::{ControlPlane, IrqLines, Ordered, Token};
//! let cp = Ordered::<ControlPlane, u32>::new(1);
//! let irqs = Ordered::<IrqLines, u32>::new(2);
//! let mut root = Token::root();
//! let lines = irqs.lock(&mut root);
//! let acct = cp.lock(&mut root);
//! drop(lines);
//! ```

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::{
    Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, WaitTimeoutResult,
};
use std::time::Duration;

/// A place in the lock order.
pub trait Level {}

/// `Self` may be held when a lock of level `L` is taken.
pub trait Before<L: Level>: Level {}

/// No lock held: a thread's entry point.
#[derive(Debug)]
pub enum Root {}
/// The control plane: the accountant.
#[derive(Debug)]
pub enum ControlPlane {}
/// The interrupt line table.
#[derive(Debug)]
pub enum IrqLines {}

impl Level for Root {}
impl Level for ControlPlane {}
impl Level for IrqLines {}

/// `before!(A => B, C)`: `A` may be held when `B` or `C` is taken.
macro_rules! before {
    ($held:ty => $($then:ty),+) => { $(impl Before<$then> for $held {})+ };
}
before!(Root => ControlPlane, IrqLines);
before!(ControlPlane => IrqLines);

/// The right to take a lock that level `L` comes [`Before`]. Not `Send`: a
/// token belongs to the thread whose call chain it orders.
#[derive(Debug)]
pub struct Token<L: Level>(PhantomData<(L, *const ())>);

impl Token<Root> {
    /// The root of one thread's call chain; made only at an entry point,
    /// never below one (a second root would let a callee go round the
    /// order).
    pub fn root() -> Token<Root> {
        Token(PhantomData)
    }
}

/// A mutex at level `L` (loom's under `--cfg loom`, the `sync` seam, so
/// the interrupt table's model runs this lock).
#[derive(Debug, Default)]
pub struct Ordered<L: Level, T> {
    m: crate::sync::Mutex<T>,
    _l: PhantomData<fn() -> L>,
}

/// The guard of an [`Ordered`] lock; [`Guard::token`] lends the right to
/// take the next lock down.
#[derive(Debug)]
pub struct Guard<'a, L: Level, T> {
    g: crate::sync::MutexGuard<'a, T>,
    tok: Token<L>,
}

impl<L: Level, T> Ordered<L, T> {
    /// A lock at level `L` around `v`.
    pub fn new(v: T) -> Self {
        Ordered {
            m: crate::sync::Mutex::new(v),
            _l: PhantomData,
        }
    }

    /// Locks it; `held` stays borrowed while the guard lives.
    pub fn lock<'a, H: Before<L>>(&'a self, held: &'a mut Token<H>) -> Guard<'a, L, T> {
        let _ = held;
        Guard {
            // A poisoned lock is taken with the state it was left in, as `leaf`.
            g: self.m.lock().unwrap_or_else(|p| p.into_inner()),
            tok: Token(PhantomData),
        }
    }
}

impl<L: Level, T> Guard<'_, L, T> {
    /// The token for the locks after this one.
    pub fn token(&mut self) -> &mut Token<L> {
        &mut self.tok
    }
}

impl<L: Level, T> Deref for Guard<'_, L, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.g
    }
}

impl<L: Level, T> DerefMut for Guard<'_, L, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.g
    }
}

/// Locks a leaf mutex: one that is never held while another lock is taken.
pub fn leaf<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Locks a leaf reader-writer lock shared.
pub fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

/// Locks a leaf reader-writer lock exclusive.
pub fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}

/// [`Condvar::wait_timeout`] on a leaf mutex's guard.
pub fn wait_timeout<'a, T>(
    cv: &Condvar,
    g: MutexGuard<'a, T>,
    dur: Duration,
) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
    cv.wait_timeout(g, dur).unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_poisoned_lock_is_taken_with_the_state_it_was_left_in() {
        let cp = Arc::new(Ordered::<ControlPlane, u32>::new(7));
        let c2 = Arc::clone(&cp);
        let r = std::thread::spawn(move || {
            let mut root = Token::root();
            let mut g = c2.lock(&mut root);
            *g = 8;
            panic!("poisons the lock");
        })
        .join();
        assert!(r.is_err());
        let mut root = Token::root();
        assert_eq!(*cp.lock(&mut root), 8);
    }

    #[test]
    fn each_lock_of_a_chain_sees_its_own_data() {
        let cp = Ordered::<ControlPlane, Vec<u8>>::new(vec![1]);
        let irqs = Ordered::<IrqLines, u8>::new(2);
        let mut root = Token::root();
        let mut acct = cp.lock(&mut root);
        *irqs.lock(acct.token()) += 1;
        acct.push(9);
        assert_eq!(*acct, vec![1, 9]);
        drop(acct);
        assert_eq!(*irqs.lock(&mut root), 3);
    }
}
