//! Lab 05: netns-veth. Not written yet.
