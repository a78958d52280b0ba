//! The control protocol's line parser reads whatever a script writes on stdin: any text,
//! any JSON under a known command, and valid lines mutated are parsed or refused with an
//! error, never a panic. `WHATNEXT_FUZZ_CASES` sets the count.

#[path = "../../core/tests/mutate.rs"]
mod mutate;

use proptest::prelude::*;
use serde_json::{Value, json};
use whatnext_control::protocol::parse_line;

use mutate::{fuzz_config, mutate, mutation};

/// Every command the parser knows, and one it does not.
fn commands() -> Vec<&'static str> {
    let mut all = whatnext_control::protocol::COMMANDS.to_vec();
    all.push("no.such.command");
    all
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::hash_map(
                prop_oneof![
                    Just("name".to_owned()),
                    Just("addr".to_owned()),
                    Just("invite".to_owned()),
                    Just("title".to_owned()),
                    Just("duration_ms".to_owned()),
                    Just("track_id".to_owned()),
                    Just("after".to_owned()),
                    Just("position_ms".to_owned()),
                    Just("peer_id".to_owned()),
                    Just("path".to_owned()),
                    ".{0,6}",
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A request line with a known command (mostly) and random id and arguments.
fn request_line() -> impl Strategy<Value = String> {
    (
        proptest::sample::select(commands()),
        json_value(),
        json_value(),
    )
        .prop_map(|(cmd, id, args)| json!({"id": id, "cmd": cmd, "args": args}).to_string())
}

proptest! {
    #![proptest_config(fuzz_config())]

    #[test]
    fn fuzz_any_text_is_parsed_or_refused_never_a_panic(line in ".{0,200}") {
        let _ = parse_line(&line);
    }

    #[test]
    fn fuzz_any_arguments_to_any_command_are_parsed_or_refused_never_a_panic(line in request_line()) {
        let _ = parse_line(&line);
    }

    #[test]
    fn fuzz_mutated_request_lines_are_parsed_or_refused_never_a_panic(
        line in request_line(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let bytes = mutate(line.into_bytes(), &mutations);
        let _ = parse_line(&String::from_utf8_lossy(&bytes));
    }
}
