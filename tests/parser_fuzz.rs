//! Randomly mutated programs fed to the parser and verifier: every one must give `Ok` or a
//! `ParseError`, never a panic. Mutations are made of corpus programs, so most of them are
//! nearly valid and reach deep into type checking.

mod common;

use proptest::prelude::*;
use traceform::ir::{parse_module, print_func, verify_func};

fn corpus_texts() -> Vec<String> {
    common::corpus_cases()
        .iter()
        .map(|c| std::fs::read_to_string(c.join("f.ir")).unwrap())
        .collect()
}

/// Pieces a careless edit might insert: tokens, keywords, numbers at the edges of ranges.
const PIECES: &[&str] = &[
    " ",
    "\n",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "=",
    "->",
    "-",
    "#",
    "x0",
    "v0",
    "v1",
    "f32",
    "f64",
    "i32",
    "bool",
    "inf",
    "-inf",
    "nan",
    "true",
    "false",
    "0",
    "1",
    "-1",
    "2",
    "4294967296",
    "99999999999999999999",
    "1e400",
    "0.5",
    "add",
    "dot_general",
    "pad",
    "slice",
    "axes=(0)",
    "dims=(0,1)",
    "perm=(1,0)",
    "[3,4]",
    "f32[]",
    "return",
    "func",
    "\u{1F600}",
    "\t",
];

#[derive(Clone, Debug)]
enum Edit {
    Delete { at: usize, len: usize },
    Insert { at: usize, piece: usize },
    Replace { at: usize, len: usize, piece: usize },
    Duplicate { at: usize, len: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1usize..8).prop_map(|(at, len)| Edit::Delete { at, len }),
        (any::<usize>(), 0..PIECES.len()).prop_map(|(at, piece)| Edit::Insert { at, piece }),
        (any::<usize>(), 1usize..6, 0..PIECES.len()).prop_map(|(at, len, piece)| Edit::Replace {
            at,
            len,
            piece
        }),
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Edit::Duplicate { at, len }),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let n = chars.len().max(1);
        match e {
            Edit::Delete { at, len } => {
                let a = at % n;
                let b = (a + len).min(chars.len());
                chars.drain(a.min(chars.len())..b);
            }
            Edit::Insert { at, piece } => {
                let a = at % (chars.len() + 1);
                chars.splice(a..a, PIECES[*piece].chars());
            }
            Edit::Replace { at, len, piece } => {
                let a = (at % n).min(chars.len());
                let b = (a + len).min(chars.len());
                chars.splice(a..b, PIECES[*piece].chars());
            }
            Edit::Duplicate { at, len } => {
                let a = (at % n).min(chars.len());
                let b = (a + len).min(chars.len());
                let copy: Vec<char> = chars[a..b].to_vec();
                chars.splice(b..b, copy);
            }
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_programs_never_panic(case in 0usize..50, edits in prop::collection::vec(edit(), 1..5)) {
        let texts = corpus_texts();
        let text = apply(&texts[case % texts.len()], &edits);
        if let Ok(module) = parse_module(&text) {
            // Whatever parses must verify and print back to something that parses the same.
            for f in &module.funcs {
                verify_func(f).unwrap();
                let again = traceform::ir::parse_func(&print_func(f)).unwrap();
                prop_assert_eq!(&again, f);
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_module(&text);
    }
}
