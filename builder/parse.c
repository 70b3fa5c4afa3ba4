/* The recipe syntax: a lexer and a recursive-descent parser producing
 * nodes in an arena. Grammar (RECIPES.md has the reference):
 *
 *   file   = item*
 *   item   = 'include' STRING | 'let' IDENT '=' value
 *          | 'param' IDENT ['=' value] | IDENT '=' value
 *          | IDENT [STRING] '{' item* '}'
 *   value  = STRING | NUMBER | 'true' | 'false' | '[' [value {',' value} [',']] ']'
 *
 * Every error names file:line:column and what would be right there. */
#include "recipe.h"

#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 32
#define MAX_STRING (64u << 10)

kb_err *kb_pos_err(kb_pos p, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return kb_errf(KB_POS_FMT ": %s", KB_POS_ARGS(p), msg);
}

typedef enum { T_EOF, T_IDENT, T_STRING, T_NUMBER, T_LBRACE, T_RBRACE, T_LBRACK,
	       T_RBRACK, T_COMMA, T_EQ } ttype;

typedef struct {
	ttype t;
	kb_pos pos;
	const char *p; /* identifier / number text */
	size_t len;
	kb_val *str; /* strings, already split into segments */
} token;

typedef struct {
	kb_arena *a;
	const char *file, *s, *end;
	int line, col;
	token tok;
	int depth;
} parser;

static const char *tname(ttype t)
{
	static const char *const n[] = {"end of file", "a name", "a string", "a number", "'{'",
					"'}'", "'['", "']'", "','", "'='"};
	return n[t];
}

static kb_pos here(const parser *P) { return (kb_pos){.file = P->file, .line = P->line, .col = P->col}; }

static void adv(parser *P)
{
	if (*P->s == '\n') {
		P->line++;
		P->col = 1;
	} else if (((unsigned char)*P->s & 0xc0) != 0x80) {
		P->col++; /* columns count characters, not UTF-8 continuation bytes */
	}
	P->s++;
}

static int is_ident_start(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int is_ident(int c) { return is_ident_start(c) || (c >= '0' && c <= '9') || c == '-'; }

static kb_err *lex_string(parser *P, token *t)
{
	kb_val *v = kb_arena_alloc(P->a, sizeof *v);
	v->type = KB_V_STR;
	v->pos = t->pos;
	kb_buf lit = {0};
	size_t cap = 0, total = 0;
	kb_pos litpos = here(P);
	adv(P); /* opening quote */
	litpos = here(P);
	kb_err *err = NULL;
	for (;;) {
		if (P->s >= P->end || *P->s == '\n') {
			err = kb_pos_err(t->pos, "this string is not closed; add '\"' before the end "
						 "of the line");
			break;
		}
		char c = *P->s;
		if (c == '"') {
			adv(P);
			break;
		}
		if (++total > MAX_STRING) {
			err = kb_pos_err(t->pos, "string longer than %u bytes", MAX_STRING);
			break;
		}
		if (c == '\\') {
			kb_pos ep = here(P);
			adv(P);
			char e = P->s < P->end ? *P->s : 0;
			const char *map = strchr("\"\\$nt", e ? e : '?');
			if (!e || !map) {
				err = kb_pos_err(ep, "unknown escape '\\%c'; write \\\" \\\\ \\$ \\n or \\t",
						 e ? e : ' ');
				break;
			}
			kb_buf_addc(&lit, e == 'n' ? '\n' : e == 't' ? '\t' : e);
			adv(P);
			continue;
		}
		if (c == '$' && P->s + 1 < P->end && P->s[1] == '{') {
			kb_pos vp = here(P);
			adv(P);
			adv(P);
			const char *n = P->s;
			while (P->s < P->end && is_ident(*P->s))
				adv(P);
			size_t nlen = (size_t)(P->s - n);
			if (!nlen || !is_ident_start(*n) || P->s >= P->end || *P->s != '}') {
				err = kb_pos_err(vp, "write a variable as ${name} (letters, digits, _ "
						     "and -), or \\$ for a literal '$'");
				break;
			}
			adv(P);
			if (lit.len) {
				v->segs = kb_arena_grow(P->a, v->segs, v->nsegs, &cap, sizeof *v->segs);
				v->segs[v->nsegs++] = (kb_seg){0, kb_arena_strndup(P->a, lit.p, lit.len),
							       lit.len, litpos};
				lit.len = 0;
			}
			v->segs = kb_arena_grow(P->a, v->segs, v->nsegs, &cap, sizeof *v->segs);
			v->segs[v->nsegs++] = (kb_seg){1, kb_arena_strndup(P->a, n, nlen), nlen, vp};
			litpos = here(P);
			continue;
		}
		kb_buf_addc(&lit, c);
		adv(P);
	}
	if (!err && (lit.len || v->nsegs == 0)) {
		v->segs = kb_arena_grow(P->a, v->segs, v->nsegs, &cap, sizeof *v->segs);
		v->segs[v->nsegs++] = (kb_seg){0, kb_arena_strndup(P->a, lit.p ? lit.p : "", lit.len),
					       lit.len, litpos};
	}
	kb_buf_free(&lit);
	t->str = v;
	return err;
}

static kb_err *next(parser *P)
{
	for (;;) {
		while (P->s < P->end && (*P->s == ' ' || *P->s == '\t' || *P->s == '\n' ||
					 *P->s == '\r' || *P->s == ';'))
			adv(P);
		if (P->s < P->end && *P->s == '#') {
			while (P->s < P->end && *P->s != '\n')
				adv(P);
			continue;
		}
		break;
	}
	token *t = &P->tok;
	memset(t, 0, sizeof *t);
	t->pos = here(P);
	if (P->s >= P->end) {
		t->t = T_EOF;
		return NULL;
	}
	char c = *P->s;
	const char *single = "{}[],=";
	const char *m = strchr(single, c);
	if (m && c) {
		static const ttype st[] = {T_LBRACE, T_RBRACE, T_LBRACK, T_RBRACK, T_COMMA, T_EQ};
		t->t = st[m - single];
		adv(P);
		return NULL;
	}
	if (c == '"') {
		t->t = T_STRING;
		return lex_string(P, t);
	}
	if (is_ident_start(c)) {
		t->t = T_IDENT;
		t->p = P->s;
		while (P->s < P->end && is_ident(*P->s))
			adv(P);
		t->len = (size_t)(P->s - t->p);
		return NULL;
	}
	if (c >= '0' && c <= '9') {
		t->t = T_NUMBER;
		t->p = P->s;
		while (P->s < P->end && *P->s >= '0' && *P->s <= '9')
			adv(P);
		t->len = (size_t)(P->s - t->p);
		if (t->len > 18)
			return kb_pos_err(t->pos, "number too large");
		if (P->s < P->end && is_ident(*P->s))
			return kb_pos_err(t->pos, "a number is digits only; quote other values as "
						  "\"...\"");
		return NULL;
	}
	if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f)
		return kb_pos_err(t->pos, "unexpected byte 0x%02x outside a string",
				  (unsigned char)c);
	return kb_pos_err(t->pos, "unexpected '%c'; quote values as \"...\"", c);
}

static int is_word(const token *t, const char *w)
{
	return t->t == T_IDENT && t->len == strlen(w) && !memcmp(t->p, w, t->len);
}

static kb_err *expect(parser *P, ttype t, const char *what)
{
	if (P->tok.t != t)
		return kb_pos_err(P->tok.pos, "expected %s %s, found %s", tname(t), what,
				  tname(P->tok.t));
	return next(P);
}

static kb_err *parse_value(parser *P, kb_val **out)
{
	token *t = &P->tok;
	if (t->t == T_STRING) {
		*out = t->str;
		return next(P);
	}
	kb_val *v = kb_arena_alloc(P->a, sizeof *v);
	v->pos = t->pos;
	*out = v;
	if (t->t == T_NUMBER) {
		v->type = KB_V_NUM;
		v->num = strtoll(kb_arena_strndup(P->a, t->p, t->len), NULL, 10);
		return next(P);
	}
	if (is_word(t, "true") || is_word(t, "false")) {
		v->type = KB_V_BOOL;
		v->num = is_word(t, "true");
		return next(P);
	}
	if (t->t == T_LBRACK) {
		v->type = KB_V_LIST;
		if (++P->depth > MAX_DEPTH)
			return kb_pos_err(t->pos, "lists nested deeper than %d", MAX_DEPTH);
		kb_err *err = next(P);
		size_t cap = 0;
		while (!err && P->tok.t != T_RBRACK) {
			kb_val *item;
			if ((err = parse_value(P, &item)))
				break;
			v->items = kb_arena_grow(P->a, v->items, v->nitems, &cap, sizeof *v->items);
			v->items[v->nitems++] = *item;
			if (P->tok.t == T_COMMA)
				err = next(P);
			else if (P->tok.t != T_RBRACK)
				err = kb_pos_err(P->tok.pos, "expected ',' or ']' in this list, found %s",
						 tname(P->tok.t));
		}
		P->depth--;
		return err ? err : next(P);
	}
	if (t->t == T_IDENT)
		return kb_pos_err(t->pos, "values are quoted: write \"%.*s\"", (int)t->len, t->p);
	return kb_pos_err(t->pos, "expected a value (\"string\", number, true, false or [list]), "
				  "found %s", tname(t->t));
}

static kb_err *parse_items(parser *P, int toplevel, kb_node **items, size_t *n);

static kb_err *parse_item(parser *P, int toplevel, kb_node *node)
{
	token *t = &P->tok;
	node->pos = t->pos;
	if (t->t != T_IDENT)
		return kb_pos_err(t->pos, toplevel ? "expected a block (like url \"name\" { ... }), "
						     "'include', or 'let', found %s"
						   : "expected 'key = value' or a block, found %s",
				  tname(t->t));
	const char *word = kb_arena_strndup(P->a, t->p, t->len);
	node->word = word;
	kb_err *err = next(P);
	if (err)
		return err;
	if (!strcmp(word, "include")) {
		node->type = KB_N_INCLUDE;
		if (!toplevel)
			return kb_pos_err(node->pos, "'include' goes at the top of a file, not inside "
						     "a block");
		if (P->tok.t != T_STRING)
			return kb_pos_err(P->tok.pos, "write include \"path/to/file.inc\"");
		return parse_value(P, &node->val);
	}
	if (!strcmp(word, "let") || !strcmp(word, "param")) {
		node->type = word[0] == 'l' ? KB_N_LET : KB_N_PARAM;
		if (P->tok.t != T_IDENT)
			return kb_pos_err(P->tok.pos, "write %s NAME%s", word,
					  word[0] == 'l' ? " = value" : " [= default]");
		node->word = kb_arena_strndup(P->a, P->tok.p, P->tok.len);
		if ((err = next(P)))
			return err;
		if (node->type == KB_N_PARAM && P->tok.t != T_EQ)
			return NULL;
		if ((err = expect(P, T_EQ, "after the name")))
			return err;
		return parse_value(P, &node->val);
	}
	if (P->tok.t == T_EQ) {
		node->type = KB_N_ATTR;
		if ((err = next(P)))
			return err;
		return parse_value(P, &node->val);
	}
	node->type = KB_N_BLOCK;
	if (P->tok.t == T_STRING) {
		node->label = P->tok.str;
		if ((err = next(P)))
			return err;
	}
	if (P->tok.t != T_LBRACE)
		return kb_pos_err(P->tok.pos, "expected '=' (for 'key = value') or '{' (for a block) "
					      "after '%s', found %s", word, tname(P->tok.t));
	if (++P->depth > MAX_DEPTH)
		return kb_pos_err(P->tok.pos, "blocks nested deeper than %d", MAX_DEPTH);
	if ((err = next(P)) || (err = parse_items(P, 0, &node->kids, &node->nkids)))
		return err;
	P->depth--;
	if (P->tok.t != T_RBRACE)
		return kb_pos_err(P->tok.pos, "expected '}' to close the block '%s' opened at line "
					      "%d, found %s", word, node->pos.line, tname(P->tok.t));
	return next(P);
}

static kb_err *parse_items(parser *P, int toplevel, kb_node **items, size_t *n)
{
	size_t cap = 0;
	*items = NULL;
	*n = 0;
	while (P->tok.t != T_EOF && P->tok.t != T_RBRACE) {
		*items = kb_arena_grow(P->a, *items, *n, &cap, sizeof **items);
		kb_node *node = &(*items)[*n];
		memset(node, 0, sizeof *node);
		kb_err *err = parse_item(P, toplevel, node);
		if (err)
			return err;
		(*n)++;
	}
	if (toplevel && P->tok.t == T_RBRACE)
		return kb_pos_err(P->tok.pos, "this '}' closes no block");
	return NULL;
}

kb_err *kb_parse(kb_arena *a, const char *file, const char *text, size_t len, kb_node **items,
		 size_t *n)
{
	parser P = {a, file, text, text + len, 1, 1, {0}, 0};
	if (memchr(text, 0, len))
		return kb_errf("%s: contains a NUL byte; recipes are text", file);
	kb_err *err = next(&P);
	if (!err)
		err = parse_items(&P, 1, items, n);
	return err;
}
