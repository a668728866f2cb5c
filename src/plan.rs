//! Quorum math and the step planner. Pure, no I/O. (Skeleton.)

/// Votes needed for a quorum of `n` voters.
pub fn quorum(n: usize) -> usize {
    n / 2 + 1
}
