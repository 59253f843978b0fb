//! Not written yet: see the open issue.
