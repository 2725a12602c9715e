// Tokens of sohuc IR text. A separate lexer grammar because tensor types need a lexer mode:
// inside `tensor<...>` the letter x separates dims, so `tensor<2x3xf32>` lexes as 2, x, 3, x, f32.
lexer grammar IrLexer;

LINE_COMMENT : '//' ~[\r\n]* -> skip ;
WS           : [ \t\r\n]+ -> skip ;

TENSOR_OPEN : 'tensor<' -> pushMode(TENSOR) ;

// Dense data is one token, read by IrParser: a large constant costs no token per element.
DENSE_DATA : 'dense<' ~[>]* '>' ;
UNTERMINATED_DENSE : 'dense<' ~[>]* ;

// Keywords come before BARE_ID so that they win on equal length; IrSyntax lets them be op and
// attribute names too (`weight` is both a declaration and an op).
MODULE     : 'module' ;
WEIGHT     : 'weight' ;
FUNC       : 'func' ;
RETURN     : 'return' ;
FILE       : 'file' ;
OFFSET     : 'offset' ;
LENGTH     : 'length' ;
INLINE     : 'inline' ;
SHAPE_ONLY : 'shape_only' ;
LOC        : 'loc' ;
DENSE      : 'dense' ;
TRUE       : 'true' ;
FALSE      : 'false' ;
INF        : 'inf' ;
NAN        : 'nan' ;

LBRACE : '{' ;
RBRACE : '}' ;
LPAREN : '(' ;
RPAREN : ')' ;
LBRACK : '[' ;
RBRACK : ']' ;
COMMA  : ',' ;
COLON  : ':' ;
EQUAL  : '=' ;
ARROW  : '->' ;
PLUS   : '+' ;
MINUS  : '-' ;
STAR   : '*' ;

VALUE_ID   : '%' NAME ;
SYMBOL_ID  : '@' NAME ;
DIM_SYMBOL : '?' NAME ;

HEX   : '0x' [0-9a-fA-F]* ;
FLOAT : DIGITS '.' DIGITS EXPONENT? | DIGITS EXPONENT ;
INT   : DIGITS ;

BARE_ID : BARE ;
STRING  : STRING_LITERAL ;
// Reported by the parser as its own error instead of as a stray quote.
UNTERMINATED_STRING : '"' STRING_CHAR* ;
// Any other character becomes a token, so every error is reported by the parser, in order.
ERROR_CHAR : . ;

fragment NAME           : BARE | DIGITS | STRING_LITERAL ;
fragment BARE           : [A-Za-z_] [A-Za-z0-9_.$]* ;
fragment DIGITS         : [0-9]+ ;
fragment EXPONENT       : [eE] [+-]? DIGITS ;
fragment STRING_LITERAL : '"' STRING_CHAR* '"' ;
fragment STRING_CHAR    : ~["\\\r\n] | '\\' ~[\r\n] ;

mode TENSOR;
TENSOR_WS    : [ \t\r\n]+ -> skip ;
TENSOR_CLOSE : '>' -> popMode ;
X            : 'x' ;
// Cannot start with x, so in `3xf32` the x is a separator.
ELEMENT_TYPE : [a-wyzA-Z_] [A-Za-z0-9_]* ;
TENSOR_INT   : DIGITS -> type(INT) ;
TENSOR_SYM   : '?' NAME -> type(DIM_SYMBOL) ;
TENSOR_PLUS  : '+' -> type(PLUS) ;
TENSOR_MINUS : '-' -> type(MINUS) ;
TENSOR_STAR  : '*' -> type(STAR) ;
TENSOR_ERROR : . -> type(ERROR_CHAR) ;
