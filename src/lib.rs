//! pbiops
