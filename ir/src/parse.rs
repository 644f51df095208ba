//! The parser of the text IR (`shared/spec/ir-text.md`): a line-aware lexer that produces
//! tokens on demand (no token array: a 10^6-equation file is read in one pass), and a parser
//! that reads each equation, resolves its names, infers its type through the strict builder
//! and checks the declared one. Names are kept in the function's side table, so printing a
//! parsed function gives the user's names back. Every error carries the line and column where
//! it was found and says what was expected; quoted tokens are cut to a readable length.
//! The only recursion is into nested attribute tuples, which is capped at a small depth.

use std::collections::HashMap;
use std::fmt;

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;
use smallvec::SmallVec;

use crate::attrs::{prim_from_parts, AttrValue};
use crate::builder::Builder;
use crate::func::{Atom, Func, Literal, Loc, Module, Var};
use crate::shape::literal_dtype;
use crate::types::{DType, Shape, Type, MAX_ELEMENTS};
use crate::verify::{is_keyword, verify_module};

/// A syntax or type error in the text, at a 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    pub line: u32,
    pub col: u32,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pos {
    line: u32,
    col: u32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Tok<'a> {
    Ident(&'a str),
    Number(&'a str),
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Colon,
    Equals,
    Arrow,
    Newline,
    Eof,
}

/// At most this many characters of a token are quoted in a message.
const MAX_QUOTED: usize = 40;

/// `s` for a message: cut to `MAX_QUOTED` characters, with `...` when cut.
fn quoted(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTED) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

impl Tok<'_> {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{}`", quoted(s)),
            Tok::Number(s) => format!("number `{}`", quoted(s)),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::LBrace => "`{`".into(),
            Tok::RBrace => "`}`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Colon => "`:`".into(),
            Tok::Equals => "`=`".into(),
            Tok::Arrow => "`->`".into(),
            Tok::Newline => "end of line".into(),
            Tok::Eof => "end of file".into(),
        }
    }
}

fn error<T>(pos: Pos, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        line: pos.line,
        col: pos.col,
        message: message.into(),
    })
}

/// The bytes that may continue a name: `[A-Za-z0-9_]`.
const IDENT_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        table[c] = b.is_ascii_alphanumeric() || b == b'_';
        c += 1;
    }
    table
};

/// Splits the text into tokens, one at a time. Newlines are tokens except inside `(...)` and
/// `[...]`, so an attribute list or a parameter list may continue over several lines.
struct Lexer<'a> {
    text: &'a str,
    i: usize,
    line: u32,
    col: u32,
    depth: u32,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Lexer<'a> {
        Lexer {
            text,
            i: 0,
            line: 1,
            col: 1,
            depth: 0,
        }
    }

    /// Moves over `n` bytes of the current line.
    fn advance(&mut self, n: usize) {
        self.i += n;
        self.col += n as u32;
    }

    fn next_tok(&mut self) -> Result<(Tok<'a>, Pos), ParseError> {
        let bytes = self.text.as_bytes();
        loop {
            // Runs of blanks, the most common bytes after name bytes, in one tight loop.
            let mut i = self.i;
            while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\r') {
                i += 1;
            }
            self.col += (i - self.i) as u32;
            self.i = i;
            let Some(&c) = bytes.get(i) else {
                return Ok((Tok::Eof, self.here()));
            };
            let pos = self.here();
            let start = self.i;
            let tok = match c {
                b'\n' => {
                    self.i += 1;
                    self.line += 1;
                    self.col = 1;
                    if self.depth > 0 {
                        continue;
                    }
                    return Ok((Tok::Newline, pos));
                }
                b'#' => {
                    let len = bytes[self.i..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .unwrap_or(bytes.len() - self.i);
                    self.advance(len);
                    continue;
                }
                b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                    let mut j = self.i + 1;
                    while j < bytes.len() && IDENT_BYTE[bytes[j] as usize] {
                        j += 1;
                    }
                    self.advance(j - start);
                    let word = &self.text[start..j];
                    return Ok((
                        if word == "inf" || word == "nan" {
                            Tok::Number(word)
                        } else {
                            Tok::Ident(word)
                        },
                        pos,
                    ));
                }
                b'0'..=b'9' | b'.' => return Ok((self.number(), pos)),
                b'-' | b'+' => {
                    let next = bytes.get(self.i + 1).copied().unwrap_or(b' ');
                    if c == b'-' && next == b'>' {
                        self.advance(2);
                        return Ok((Tok::Arrow, pos));
                    }
                    if next.is_ascii_digit() || next == b'.' {
                        return Ok((self.number(), pos));
                    }
                    let ident = |d: &u8| d.is_ascii_alphanumeric() || *d == b'_';
                    if c == b'-'
                        && bytes[self.i + 1..].starts_with(b"inf")
                        && !bytes.get(self.i + 4).is_some_and(ident)
                    {
                        self.advance(4);
                        return Ok((Tok::Number("-inf"), pos));
                    }
                    return self.unexpected(pos);
                }
                b'(' => Tok::LParen,
                b')' => Tok::RParen,
                b'[' => Tok::LBracket,
                b']' => Tok::RBracket,
                b'{' => Tok::LBrace,
                b'}' => Tok::RBrace,
                b',' => Tok::Comma,
                b':' => Tok::Colon,
                b'=' => Tok::Equals,
                _ => return self.unexpected(pos),
            };
            match tok {
                Tok::LParen | Tok::LBracket => self.depth += 1,
                Tok::RParen | Tok::RBracket => self.depth = self.depth.saturating_sub(1),
                _ => {}
            }
            self.advance(1);
            return Ok((tok, pos));
        }
    }

    fn here(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    /// A number starting at the current byte: digits, `.`, an exponent and its sign.
    fn number(&mut self) -> Tok<'a> {
        let bytes = self.text.as_bytes();
        let start = self.i;
        let mut j = self.i + 1;
        while j < bytes.len() {
            let d = bytes[j];
            let exponent_sign = (d == b'-' || d == b'+') && matches!(bytes[j - 1], b'e' | b'E');
            if d.is_ascii_digit() || d == b'.' || d == b'e' || d == b'E' || exponent_sign {
                j += 1;
            } else {
                break;
            }
        }
        self.advance(j - start);
        Tok::Number(&self.text[start..j])
    }

    fn unexpected<T>(&self, pos: Pos) -> Result<T, ParseError> {
        let ch = self.text[self.i..].chars().next().unwrap_or('?');
        error(pos, format!("unexpected character `{}`", ch.escape_debug()))
    }
}

/// A number as written, before its dtype is known.
#[derive(Clone, Debug)]
enum RawAtom<'a> {
    Name(&'a str, Pos),
    Number {
        text: &'a str,
        dtype: Option<DType>,
        pos: Pos,
    },
    Bool(bool, Pos),
}

impl RawAtom<'_> {
    fn pos(&self) -> Pos {
        match self {
            RawAtom::Name(_, p) | RawAtom::Bool(_, p) => *p,
            RawAtom::Number { pos, .. } => *pos,
        }
    }
}

const MAX_TUPLE_DEPTH: usize = 8;

struct Parser<'a> {
    lexer: Lexer<'a>,
    cur: (Tok<'a>, Pos),
}

/// Names in scope in one function, and where each value was defined. The hash table holds
/// only value indices (4 bytes an entry, so a function of 10^6 names keeps it in cache); the
/// names themselves are compared through `keys`, by value index.
struct Scope<'a> {
    table: HashTable<Var>,
    keys: Vec<&'a str>,
    defined_at: Vec<Pos>,
    /// The latest definitions by hash, direct-mapped: operands mostly name recent values,
    /// which are found here without touching the big table.
    recent: [(u64, Var); RECENT],
    /// Values named as the printer names them (`x<i>` for parameter `i`, `v<k>` for equation
    /// `k`), by that position (`NONE` where another name was used): found without hashing,
    /// which is how programs printed by traceform are read.
    positional: [Vec<Var>; 2],
}

/// No value at this position.
const NONE: Var = Var(u32::MAX);

/// What binds a value: a parameter or an equation (an index into `Scope::positional`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Binder {
    Param = 0,
    Eqn = 1,
}

/// The binder and position a name in the printer's own form stands for: `x<i>` is parameter
/// `i`, `v<k>` equation `k` (canonical decimal digits only).
fn derived_position(name: &str) -> Option<(Binder, usize)> {
    let binder = match name.as_bytes().first()? {
        b'x' => Binder::Param,
        b'v' => Binder::Eqn,
        _ => return None,
    };
    let digits = &name[1..];
    let canonical = digits == "0" || !digits.starts_with('0');
    if !canonical
        || digits.is_empty()
        || digits.len() > 9
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some((binder, digits.parse().ok()?))
}

const RECENT: usize = 256;

impl Default for Scope<'_> {
    fn default() -> Self {
        Scope {
            table: HashTable::new(),
            keys: Vec::new(),
            defined_at: Vec::new(),
            recent: [(0, NONE); RECENT],
            positional: [Vec::new(), Vec::new()],
        }
    }
}

fn name_hash(name: &str) -> u64 {
    FxBuildHasher.hash_one(name)
}

impl<'a> Scope<'a> {
    fn reserve(&mut self, names: usize) {
        self.table
            .reserve(names, |v| name_hash(self.keys[v.index()]));
        self.keys.reserve(names);
        self.defined_at.reserve(names);
    }

    fn positional(&self, name: &str) -> Option<Var> {
        let (binder, i) = derived_position(name)?;
        self.positional[binder as usize]
            .get(i)
            .copied()
            .filter(|&v| v != NONE)
    }

    fn get(&self, name: &str) -> Option<Var> {
        if let Some(v) = self.positional(name) {
            return Some(v);
        }
        if self.table.is_empty() {
            return None;
        }
        let hash = name_hash(name);
        let (h, v) = self.recent[hash as usize % RECENT];
        if h == hash && self.keys.get(v.index()) == Some(&name) {
            return Some(v);
        }
        self.table
            .find(hash, |v| self.keys[v.index()] == name)
            .copied()
    }

    fn already_defined<T>(&self, name: &str, old: Var, pos: Pos) -> Result<T, ParseError> {
        let p = self.defined_at[old.index()];
        error(
            pos,
            format!(
                "`{}` is already defined at {}:{}",
                quoted(name),
                p.line,
                p.col
            ),
        )
    }

    /// Defines `name` as `v`, the next value (the parser defines values in order, so it
    /// knows the value before building it), bound by `binder` at position `index`; or says
    /// where `name` is already defined. A name in the printer's form at its own position
    /// needs no hashing; any other takes one probe of the table.
    fn define(
        &mut self,
        name: &'a str,
        v: Var,
        pos: Pos,
        binder: Binder,
        index: usize,
    ) -> Result<(), ParseError> {
        debug_assert_eq!(v.index(), self.keys.len(), "values are defined in order");
        if let Some(old) = self.positional(name) {
            return self.already_defined(name, old, pos);
        }
        if derived_position(name) == Some((binder, index)) {
            if !self.table.is_empty() {
                let found = self
                    .table
                    .find(name_hash(name), |w| self.keys[w.index()] == name);
                if let Some(&old) = found {
                    return self.already_defined(name, old, pos);
                }
            }
            let slots = &mut self.positional[binder as usize];
            if slots.len() <= index {
                slots.resize(index + 1, NONE);
            }
            slots[index] = v;
            self.keys.push(name);
            self.defined_at.push(pos);
            return Ok(());
        }
        let hash = name_hash(name);
        let keys = &self.keys;
        match self.table.entry(
            hash,
            |w| keys[w.index()] == name,
            |w| name_hash(keys[w.index()]),
        ) {
            hashbrown::hash_table::Entry::Occupied(e) => {
                let old = *e.get();
                self.already_defined(name, old, pos)
            }
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert(v);
                self.keys.push(name);
                self.defined_at.push(pos);
                self.recent[hash as usize % RECENT] = (hash, v);
                Ok(())
            }
        }
    }
}

impl<'a> Parser<'a> {
    fn peek(&self) -> &Tok<'a> {
        &self.cur.0
    }

    fn pos(&self) -> Pos {
        self.cur.1
    }

    fn bump(&mut self) -> Result<(Tok<'a>, Pos), ParseError> {
        let t = self.cur;
        if t.0 != Tok::Eof {
            self.cur = self.lexer.next_tok()?;
        }
        Ok(t)
    }

    fn expected<T>(&self, what: &str) -> Result<T, ParseError> {
        error(
            self.pos(),
            format!("expected {what}, found {}", self.peek().describe()),
        )
    }

    fn expect(&mut self, tok: Tok<'a>) -> Result<Pos, ParseError> {
        if *self.peek() == tok {
            Ok(self.bump()?.1)
        } else {
            self.expected(&tok.describe())
        }
    }

    fn skip_newlines(&mut self) -> Result<(), ParseError> {
        while *self.peek() == Tok::Newline {
            self.bump()?;
        }
        Ok(())
    }

    fn end_of_line(&mut self) -> Result<(), ParseError> {
        match self.peek() {
            Tok::Newline => {
                self.bump()?;
                Ok(())
            }
            Tok::Eof => Ok(()),
            _ => self.expected("end of line"),
        }
    }

    fn name(&mut self, what: &str) -> Result<(&'a str, Pos), ParseError> {
        match *self.peek() {
            Tok::Ident(s) if !is_keyword(s) => Ok((s, self.bump()?.1)),
            Tok::Ident(s) => error(self.pos(), format!("expected {what}, found keyword `{s}`")),
            _ => self.expected(what),
        }
    }

    fn integer(&mut self, what: &str) -> Result<i64, ParseError> {
        let pos = self.pos();
        match *self.peek() {
            Tok::Number(s) => {
                self.bump()?;
                s.parse::<i64>()
                    .or_else(|_| error(pos, format!("expected {what}, found `{s}`")))
            }
            _ => self.expected(what),
        }
    }

    fn parse_type(&mut self) -> Result<Type, ParseError> {
        let pos = self.pos();
        let dtype = match *self.peek() {
            Tok::Ident(s) => match DType::from_name(s) {
                Some(d) => {
                    self.bump()?;
                    d
                }
                None => {
                    return error(
                        pos,
                        format!("expected a dtype (f32, f64, i32, bool), found `{s}`"),
                    )
                }
            },
            _ => return self.expected("a type such as f32[3,4]"),
        };
        self.expect(Tok::LBracket)?;
        let mut shape = Shape::new();
        if *self.peek() != Tok::RBracket {
            loop {
                let p = self.pos();
                let d = self.integer("a dimension size")?;
                if !(0..=i64::from(u32::MAX)).contains(&d) {
                    return error(p, format!("dimension size {d} is out of range"));
                }
                shape.push(d as usize);
                if *self.peek() == Tok::Comma {
                    self.bump()?;
                } else {
                    break;
                }
            }
        }
        self.expect(Tok::RBracket)?;
        if !Type::fits(&shape) {
            return error(
                pos,
                format!("tensor type is too large (at most {MAX_ELEMENTS} elements over its non-zero axes)"),
            );
        }
        Ok(Type { dtype, shape })
    }

    fn attr_value(&mut self, depth: usize) -> Result<AttrValue, ParseError> {
        let pos = self.pos();
        match *self.peek() {
            Tok::Number(s) => {
                self.bump()?;
                if let Ok(i) = s.parse::<i64>() {
                    Ok(AttrValue::Int(i))
                } else {
                    parse_float(s, pos).map(AttrValue::Float)
                }
            }
            Tok::Ident(s) if s == "true" || s == "false" => {
                self.bump()?;
                Ok(AttrValue::Bool(s == "true"))
            }
            Tok::Ident(s) => {
                self.bump()?;
                Ok(AttrValue::Name(s.to_string()))
            }
            Tok::LParen => {
                if depth >= MAX_TUPLE_DEPTH {
                    return error(pos, "attribute tuples are nested too deeply");
                }
                self.bump()?;
                let mut items = Vec::new();
                while *self.peek() != Tok::RParen {
                    items.push(self.attr_value(depth + 1)?);
                    match self.peek() {
                        Tok::Comma => {
                            self.bump()?;
                        }
                        Tok::RParen => {}
                        _ => return self.expected("`,` or `)`"),
                    }
                }
                self.bump()?;
                Ok(AttrValue::Tuple(items))
            }
            _ => self.expected("an attribute value"),
        }
    }

    fn atom(&mut self) -> Result<RawAtom<'a>, ParseError> {
        let pos = self.pos();
        match *self.peek() {
            Tok::Ident(s) if s == "true" || s == "false" => {
                self.bump()?;
                Ok(RawAtom::Bool(s == "true", pos))
            }
            Tok::Ident(_) => {
                let (s, p) = self.name("an operand")?;
                Ok(RawAtom::Name(s, p))
            }
            Tok::Number(text) => {
                self.bump()?;
                let mut dtype = None;
                if *self.peek() == Tok::Colon {
                    self.bump()?;
                    let p = self.pos();
                    match *self.peek() {
                        Tok::Ident(d) if DType::from_name(d).is_some() => {
                            self.bump()?;
                            dtype = DType::from_name(d);
                        }
                        _ => {
                            return error(
                                p,
                                format!(
                                    "expected a dtype after `{text}:`, found {}",
                                    self.peek().describe()
                                ),
                            )
                        }
                    }
                }
                Ok(RawAtom::Number { text, dtype, pos })
            }
            _ => self.expected("an operand (a name or a number)"),
        }
    }

    fn module(&mut self) -> Result<Module, ParseError> {
        let mut module = Module::default();
        let mut names: HashMap<String, Pos> = HashMap::new();
        self.skip_newlines()?;
        loop {
            match self.peek() {
                Tok::Eof if !module.funcs.is_empty() => break,
                Tok::Ident(s) if *s == "func" => {}
                _ => return self.expected("`func`"),
            }
            let func_pos = self.pos();
            let func = self.func()?;
            if let Some(p) = names.get(&func.name) {
                return error(
                    func_pos,
                    format!(
                        "function `{}` is already defined at {}:{}",
                        func.name, p.line, p.col
                    ),
                );
            }
            names.insert(func.name.clone(), func_pos);
            module.funcs.push(func);
            self.skip_newlines()?;
        }
        Ok(module)
    }

    fn func(&mut self) -> Result<Func, ParseError> {
        self.bump()?; // `func`
        let (name, _) = self.name("a function name")?;
        let mut b = Builder::new(name);
        let mut scope = Scope::default();
        // About one equation per 40 bytes of text: reserve once instead of growing.
        let estimate = (self.lexer.text.len() - self.lexer.i) / 40;
        b.reserve(estimate);
        scope.reserve(estimate);
        self.expect(Tok::LParen)?;
        while *self.peek() != Tok::RParen {
            let (pname, ppos) = self.name("a parameter name")?;
            self.expect(Tok::Colon)?;
            let ty = self.parse_type()?;
            let index = b.func().params.len();
            scope.define(
                pname,
                Var(b.func().num_vars() as u32),
                ppos,
                Binder::Param,
                index,
            )?;
            let v = b.param(&ty);
            if derived_position(pname) != Some((Binder::Param, index)) {
                b.set_name(v, pname);
            }
            match self.peek() {
                Tok::Comma => {
                    self.bump()?;
                }
                Tok::RParen => {}
                _ => return self.expected("`,` or `)`"),
            }
        }
        self.bump()?;
        self.expect(Tok::Arrow)?;
        let mut results = Vec::new();
        if *self.peek() == Tok::LParen {
            self.bump()?;
            loop {
                results.push(self.parse_type()?);
                match self.peek() {
                    Tok::Comma => {
                        self.bump()?;
                    }
                    Tok::RParen => break,
                    _ => return self.expected("`,` or `)`"),
                }
            }
            self.bump()?;
        } else {
            results.push(self.parse_type()?);
        }
        self.expect(Tok::LBrace)?;
        self.end_of_line()?;
        loop {
            self.skip_newlines()?;
            match *self.peek() {
                Tok::Ident("return") => {
                    let ret_pos = self.bump()?.1;
                    let outputs = self.ret(&b, &scope, &results, ret_pos)?;
                    self.skip_newlines()?;
                    self.expect(Tok::RBrace)?;
                    self.end_of_line()?;
                    return b.finish(&outputs).or_else(|e| error(ret_pos, e.message));
                }
                Tok::Ident(_) => self.eqn(&mut b, &mut scope)?,
                Tok::RBrace => return self.expected("`return` before `}`"),
                _ => return self.expected("an equation or `return`"),
            }
        }
    }

    fn resolve(
        &self,
        scope: &Scope<'a>,
        raw: &RawAtom,
        dtype_if_untyped: DType,
    ) -> Result<Atom, ParseError> {
        match raw {
            RawAtom::Name(n, pos) => match scope.get(n) {
                Some(v) => Ok(Atom::Var(v)),
                None => error(*pos, format!("undefined name `{}`", quoted(n))),
            },
            RawAtom::Bool(v, _) => Ok(Atom::Lit(Literal::new(
                f64::from(u8::from(*v)),
                DType::Bool,
            ))),
            RawAtom::Number { text, dtype, pos } => {
                let dtype = dtype.unwrap_or(dtype_if_untyped);
                let value = parse_float(text, *pos)?;
                match dtype {
                    DType::I32
                        if value.fract() != 0.0
                            || !(f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&value) =>
                    {
                        error(*pos, format!("literal `{}` is not an i32", quoted(text)))
                    }
                    DType::Bool => error(
                        *pos,
                        format!(
                            "literal `{}` cannot be a bool (use true or false)",
                            quoted(text)
                        ),
                    ),
                    _ => Ok(Atom::Lit(Literal::new(value, dtype))),
                }
            }
        }
    }

    fn eqn(&mut self, b: &mut Builder, scope: &mut Scope<'a>) -> Result<(), ParseError> {
        let (out_name, out_pos) = self.name("a value name")?;
        let mut declared = None;
        if *self.peek() == Tok::Colon {
            self.bump()?;
            let p = self.pos();
            declared = Some((self.parse_type()?, p));
        }
        self.expect(Tok::Equals)?;
        let prim_pos = self.pos();
        let prim_name = match *self.peek() {
            Tok::Ident(s) => {
                self.bump()?;
                s
            }
            _ => return self.expected("a primitive name"),
        };
        let mut attrs: Vec<(&str, AttrValue)> = Vec::new();
        let mut attr_names: SmallVec<[&str; 4]> = SmallVec::new();
        let mut attr_pos: SmallVec<[Pos; 4]> = SmallVec::new();
        if *self.peek() == Tok::LBracket {
            self.bump()?;
            while *self.peek() != Tok::RBracket {
                let (aname, apos) = self.name("an attribute name")?;
                self.expect(Tok::Equals)?;
                let value = self.attr_value(0)?;
                attrs.push((aname, value));
                attr_names.push(aname);
                attr_pos.push(apos);
                match self.peek() {
                    Tok::Comma => {
                        self.bump()?;
                    }
                    Tok::RBracket => {}
                    _ => return self.expected("`,` or `]`"),
                }
            }
            self.bump()?;
        }
        let mut raw_args: SmallVec<[RawAtom<'a>; 4]> = SmallVec::new();
        while !matches!(self.peek(), Tok::Newline | Tok::Eof) {
            raw_args.push(self.atom()?);
        }
        self.end_of_line()?;

        let prim = prim_from_parts(prim_name, attrs).or_else(|e| {
            let pos = e
                .attr
                .as_ref()
                .and_then(|a| attr_names.iter().position(|n| n == a))
                .map_or(prim_pos, |i| attr_pos[i]);
            error(pos, e.message)
        })?;
        // Names are looked up once; numbers wait for the dtype the other operands give.
        let mut args: SmallVec<[Atom; 4]> = SmallVec::new();
        let mut known: SmallVec<[Option<DType>; 4]> = SmallVec::new();
        for r in &raw_args {
            let (atom, dtype) = match r {
                RawAtom::Name(n, pos) => match scope.get(n) {
                    Some(v) => (Atom::Var(v), Some(b.func().var_type(v).dtype)),
                    None => return error(*pos, format!("undefined name `{}`", quoted(n))),
                },
                RawAtom::Number { dtype, .. } => (Atom::Lit(Literal::new(0.0, DType::F32)), *dtype),
                RawAtom::Bool(v, _) => (
                    Atom::Lit(Literal::new(f64::from(u8::from(*v)), DType::Bool)),
                    Some(DType::Bool),
                ),
            };
            args.push(atom);
            known.push(dtype);
        }
        let fallback = match &declared {
            Some((t, _)) if t.dtype.is_numeric() => t.dtype,
            _ => DType::F32,
        };
        let lit_dtype = literal_dtype(&prim, &known, fallback);
        for (a, r) in args.iter_mut().zip(&raw_args) {
            if let RawAtom::Number { .. } = r {
                *a = self.resolve(scope, r, lit_dtype)?;
            }
        }
        let next = Var(b.func().num_vars() as u32);
        let index = b.func().eqns.len();
        scope.define(out_name, next, out_pos, Binder::Eqn, index)?;
        b.set_loc(Loc::Text {
            line: prim_pos.line,
            col: prim_pos.col,
        });
        let v = b
            .try_eqn(prim, &args)
            .or_else(|e| error(prim_pos, e.message))?;
        if let Some((ty, p)) = declared {
            let inferred = b.func().var_type(v);
            if &ty != inferred {
                return error(
                    p,
                    format!(
                        "`{}` is declared {ty} but `{prim_name}` gives {inferred}",
                        quoted(out_name)
                    ),
                );
            }
        }
        debug_assert_eq!(v, next, "the builder numbers values in order");
        if derived_position(out_name) != Some((Binder::Eqn, index)) {
            b.set_name(v, out_name);
        }
        Ok(())
    }

    fn ret(
        &mut self,
        b: &Builder,
        scope: &Scope<'a>,
        results: &[Type],
        ret_pos: Pos,
    ) -> Result<Vec<Atom>, ParseError> {
        let mut raw = vec![self.atom()?];
        while *self.peek() == Tok::Comma {
            self.bump()?;
            raw.push(self.atom()?);
        }
        if !matches!(self.peek(), Tok::Newline | Tok::Eof | Tok::RBrace) {
            return self.expected("`,` or end of line");
        }
        if raw.len() != results.len() {
            return error(
                ret_pos,
                format!(
                    "the signature declares {} result(s) but `return` gives {}",
                    results.len(),
                    raw.len()
                ),
            );
        }
        let mut outputs = Vec::with_capacity(raw.len());
        for (r, declared) in raw.iter().zip(results) {
            let a = self.resolve(scope, r, declared.dtype)?;
            let ty = b.ty(&a);
            if ty != declared {
                let p = r.pos();
                return error(
                    p,
                    format!("returned value has type {ty} but the signature declares {declared}"),
                );
            }
            outputs.push(a);
        }
        Ok(outputs)
    }
}

fn parse_float(text: &str, pos: Pos) -> Result<f64, ParseError> {
    match text {
        "inf" => Ok(f64::INFINITY),
        "-inf" => Ok(f64::NEG_INFINITY),
        "nan" => Ok(f64::NAN),
        _ => text
            .parse::<f64>()
            .or_else(|_| error(pos, format!("`{text}` is not a number"))),
    }
}

/// Parses a module: one or more functions, the first being the entry point. The result is
/// verified; any error carries its line and column.
pub fn parse_module(text: &str) -> Result<Module, ParseError> {
    let mut lexer = Lexer::new(text);
    let cur = lexer.next_tok()?;
    let mut p = Parser { lexer, cur };
    let module = p.module()?;
    // The parser enforces the verifier's invariants as it builds (every equation through the
    // shape rules, names resolved in scope); the verifier double-checks in debug builds.
    if !cfg!(debug_assertions) {
        return Ok(module);
    }
    verify_module(&module).map_err(|e| {
        let (line, col) = match e.loc {
            Loc::Text { line, col } => (line, col),
            _ => (1, 1),
        };
        ParseError {
            line,
            col,
            message: e.message,
        }
    })?;
    Ok(module)
}

/// Parses a module and returns its entry function.
pub fn parse_func(text: &str) -> Result<Func, ParseError> {
    let mut module = parse_module(text)?;
    Ok(module.funcs.swap_remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::print::print_func;

    const ROSENBROCK: &str = "# Rosenbrock on five points.
func rosenbrock(x: f32[5]) -> f32[] {
  b: f32[4] = slice[start=(1), limit=(5)] x
  c: f32[4] = slice[start=(0), limit=(4)] x
  d: f32[4] = integer_pow[y=2] c
  e: f32[4] = sub b d
  f: f32[4] = integer_pow[y=2] e
  g: f32[4] = mul 100.0 f
  i: f32[4] = sub 1.0 c
  j: f32[4] = integer_pow[y=2] i
  k: f32[4] = add g j
  l: f32[] = reduce_sum[axes=(0)] k
  return l
}
";

    #[test]
    fn spec_example_round_trips() {
        let f = parse_func(ROSENBROCK).unwrap();
        let text = print_func(&f);
        assert_eq!(parse_func(&text).unwrap(), f);
        assert!(text.contains("g: f32[4] = mul 100.0:f32 f"), "{text}");
    }

    #[test]
    fn the_whole_i32_range_reads_back() {
        let text = "func f(x: i32[]) -> i32[] {\n  y: i32[] = add x -2147483648\n  return y\n}\n";
        let f = parse_func(text).unwrap();
        assert_eq!(
            print_func(&f),
            text.replace("-2147483648", "-2147483648:i32")
        );
        assert!(parse_func(&text.replace("-2147483648", "-2147483649")).is_err());
    }

    #[test]
    fn printer_style_names_resolve_without_hashing_and_still_clash() {
        let ok = "func f(x0: f32[2], b: f32[2]) -> f32[2] {\n  v0 = sin x0\n  c = mul v0 b\n  v2 = add c v0\n  return v2\n}\n";
        let f = parse_func(ok).unwrap();
        assert_eq!(
            print_func(&parse_func(&print_func(&f)).unwrap()),
            print_func(&f)
        );
        assert!(f.names.get(f.params[1]) == Some("b") && f.names.get(f.params[0]).is_none());
        let clashes = [
            (
                "func f(x: f32[]) -> f32[] {\n  v1 = sin x\n  v1 = cos x\n  return v1\n}\n",
                3,
            ),
            (
                "func f(x: f32[]) -> f32[] {\n  v0 = sin x\n  v0 = cos x\n  return v0\n}\n",
                3,
            ),
            (
                "func f(x: f32[]) -> f32[] {\n  v1 = sin x\n  v1 = sin v1\n  return v1\n}\n",
                3,
            ),
            (
                "func f(x0: f32[]) -> f32[] {\n  x0 = sin x0\n  return x0\n}\n",
                2,
            ),
        ];
        for (text, line) in clashes {
            let e = parse_func(text).unwrap_err();
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(e.message.contains("is already defined at"), "{e}");
        }
    }

    #[test]
    fn errors_carry_line_and_column() {
        let e = parse_func("func f(x: f32[3]) -> f32[3] {\n  y: f32[3] = add x q\n  return y\n}\n")
            .unwrap_err();
        assert_eq!(
            (e.line, e.col, e.message.as_str()),
            (2, 21, "undefined name `q`")
        );
    }

    #[test]
    fn attributes_may_span_lines_and_types_may_be_omitted() {
        let text = "func f(x: f32[2,3]) -> f32[3,2] {\n  y = transpose[\n    perm=(1,0,)\n  ] x\n  return y\n}";
        let f = parse_func(text).unwrap();
        assert_eq!(f.output_types()[0], Type::new(DType::F32, vec![3, 2]));
    }
}
