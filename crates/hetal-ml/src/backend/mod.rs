//! The two implementations of [`CkksOps`](crate::CkksOps): the real CKKS evaluator and the
//! slot-level simulator.

mod ckks;
mod sim;

pub use ckks::{CkksBackend, CkksClient};
pub use sim::{SimCt, SimPt, SlotSim};
