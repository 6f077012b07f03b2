//! zip (being written).
