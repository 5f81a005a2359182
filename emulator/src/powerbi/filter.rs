//! The subset of OData `$filter` that `GET /groups` understands: `name eq '…'`, `id eq '…'`,
//! `contains(name,'…')`, optionally parenthesised and joined by `or`.
//!
//! Anything else is rejected with a message, rather than ignored, so a client that sends a filter
//! the emulator does not model finds out at once. Comparisons are case-insensitive (the reference
//! does not say how the service compares; this choice is documented in the README).

/// One condition on a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Clause {
    /// `name eq '…'`
    NameEq(String),
    /// `id eq '…'`
    IdEq(String),
    /// `contains(name,'…')`
    NameContains(String),
}

/// A parsed filter: the workspace matches when any clause does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filter(Vec<Clause>);

impl Filter {
    /// Parses a `$filter` value.
    pub fn parse(text: &str) -> Result<Filter, String> {
        let tokens = tokenize(text)?;
        let mut parser = Parser { tokens, pos: 0 };
        let clauses = parser.disjunction()?;
        match parser.tokens.get(parser.pos) {
            None => Ok(Filter(clauses)),
            Some(token) => Err(format!("unexpected {}", token.describe())),
        }
    }

    /// Whether a workspace with this id and name matches.
    pub fn matches(&self, id: &str, name: &str) -> bool {
        let lower_name = name.to_lowercase();
        self.0.iter().any(|clause| match clause {
            Clause::NameEq(value) => lower_name == value.to_lowercase(),
            Clause::IdEq(value) => id.eq_ignore_ascii_case(value),
            Clause::NameContains(value) => lower_name.contains(&value.to_lowercase()),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Open,
    Close,
    Comma,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Word(w) => format!("'{w}'"),
            Token::Text(t) => format!("string '{t}'"),
            Token::Open => "'('".to_owned(),
            Token::Close => "')'".to_owned(),
            Token::Comma => "','".to_owned(),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | ',' => {
                chars.next();
                tokens.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    _ => Token::Comma,
                });
            }
            '\'' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated string literal".to_owned()),
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            value.push('\'');
                        }
                        Some('\'') => break,
                        Some(other) => value.push(other),
                    }
                }
                tokens.push(Token::Text(value));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_alphanumeric() || c == '_' || c == '.' || c == '/' {
                        word.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Word(word));
            }
            other => return Err(format!("unexpected character '{other}'")),
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn expect(&mut self, want: Token) -> Result<(), String> {
        match self.next() {
            Some(token) if token == want => Ok(()),
            Some(token) => Err(format!(
                "expected {}, found {}",
                want.describe(),
                token.describe()
            )),
            None => Err(format!("expected {}, found the end", want.describe())),
        }
    }

    fn text(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Text(value)) => Ok(value),
            Some(token) => Err(format!(
                "expected a quoted string, found {}",
                token.describe()
            )),
            None => Err("expected a quoted string, found the end".to_owned()),
        }
    }

    fn disjunction(&mut self) -> Result<Vec<Clause>, String> {
        let mut clauses = self.term()?;
        while self.peek_word("or") {
            self.pos += 1;
            clauses.extend(self.term()?);
        }
        if self.peek_word("and") {
            return Err("'and' is not supported by the emulator; use 'or'".to_owned());
        }
        Ok(clauses)
    }

    fn term(&mut self) -> Result<Vec<Clause>, String> {
        match self.next() {
            Some(Token::Open) => {
                let clauses = self.disjunction()?;
                self.expect(Token::Close)?;
                Ok(clauses)
            }
            Some(Token::Word(word)) if word.eq_ignore_ascii_case("contains") => {
                self.expect(Token::Open)?;
                self.expect(Token::Word("name".to_owned()))?;
                self.expect(Token::Comma)?;
                let value = self.text()?;
                self.expect(Token::Close)?;
                Ok(vec![Clause::NameContains(value)])
            }
            Some(Token::Word(field)) if field == "name" || field == "id" => {
                match self.next() {
                    Some(Token::Word(op)) if op.eq_ignore_ascii_case("eq") => {}
                    Some(token) => {
                        return Err(format!(
                            "expected 'eq' after '{field}', found {}",
                            token.describe()
                        ));
                    }
                    None => return Err(format!("expected 'eq' after '{field}'")),
                }
                let value = self.text()?;
                Ok(vec![if field == "name" {
                    Clause::NameEq(value)
                } else {
                    Clause::IdEq(value)
                }])
            }
            Some(token) => Err(format!(
                "expected name eq '…', id eq '…' or contains(name,'…'), found {}",
                token.describe()
            )),
            None => Err("empty filter".to_owned()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let filter = Filter::parse("contains(name,'marketing') or name eq 'contoso'").unwrap();
        assert!(filter.matches("x", "Contoso"));
        assert!(filter.matches("x", "EU Marketing"));
        assert!(!filter.matches("x", "Sales"));
    }

    #[test]
    fn doubled_quotes_escape_a_quote() {
        let filter = Filter::parse("name eq 'O''Brien''s'").unwrap();
        assert_eq!(filter, Filter(vec![Clause::NameEq("O'Brien's".into())]));
    }

    #[test]
    fn ids_and_parentheses() {
        let filter = Filter::parse("(id eq 'ABC' or name eq 'x')").unwrap();
        assert!(filter.matches("abc", "whatever"));
    }

    #[test]
    fn unsupported_filters_are_rejected() {
        for bad in [
            "",
            "name eq Sales",
            "name ne 'x'",
            "name eq 'x' and id eq 'y'",
            "name eq 'x",
            "startswith(name,'x')",
            "name eq 'x' or",
            "capacityId eq 'x'",
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
    }
}
