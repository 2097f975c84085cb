//! The fixed label sets of TAU Urban Acoustic Scenes 2022 Mobile, in the order every DCASE table uses.

/// The 10 scene classes, in table order.
pub const CLASSES: [&str; 10] = [
    "airport",
    "bus",
    "metro",
    "metro_station",
    "park",
    "public_square",
    "shopping_mall",
    "street_pedestrian",
    "street_traffic",
    "tram",
];

/// Recording devices, in table order: a, b, c real; s1–s6 simulated (s4–s6 only in the test split).
pub const DEVICES: [&str; 9] = ["a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6"];

/// Devices never seen in training (DCASE "unseen" columns).
pub const UNSEEN_DEVICES: [&str; 3] = ["s4", "s5", "s6"];

pub fn class_index(name: &str) -> Option<usize> {
    CLASSES.iter().position(|c| *c == name)
}

pub fn device_index(name: &str) -> Option<usize> {
    DEVICES.iter().position(|d| *d == name)
}
