//! The example configuration beside this crate stays in step with the file format.

use runtime_tokio::config_file::Settings;
use std::path::Path;

#[test]
fn example_file_parses_to_the_defaults() {
    let example = include_str!("../switchyard.example.toml");
    let settings = Settings::from_toml(example, Path::new("switchyard.example.toml")).unwrap();
    assert_eq!(settings, Settings::default());
}
