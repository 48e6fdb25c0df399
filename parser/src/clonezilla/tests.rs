//! Unit tests of the Clonezilla module.
