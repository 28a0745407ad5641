//! Deterministic simulation of N cores. (Filled in by the simulation work.)
