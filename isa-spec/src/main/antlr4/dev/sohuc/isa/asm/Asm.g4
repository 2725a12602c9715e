// The sohu assembly language: one statement per line.
//   label:  mnemonic operand, operand, key=value   # comment (or ; comment)
//   .equ NAME, expr      .reg NAME, rN      .target "name", "sha256"   .meta "key", "value"
//   .arg name, index     .symbol in|out, "name", dtype, [dims], addr, bytes    .debug "op", "loc"
//   (a symbolic dim laid out at a capacity: "past"@2176)
grammar Asm;

program     : line* EOF ;
line        : label* statement? NEWLINE ;
label       : IDENT ':' ;
statement   : directive | instruction ;
directive   : DIRECTIVE (arg (',' arg)*)? ;
instruction : IDENT (operand (',' operand)*)? ;
operand     : (key=IDENT '=')? expr ;
arg         : expr | STRING | shape ;
shape       : '[' (dim (',' dim)*)? ']' ;
dim         : expr | STRING ('@' capacity=expr)? ;

expr
  : '(' expr ')'                      # Parens
  | op=('-' | '+' | '~') expr         # Unary
  | expr op=('*' | '/' | '%') expr    # MulDiv
  | expr op=('+' | '-') expr          # AddSub
  | expr op=('<<' | '>>') expr        # Shift
  | INT                               # Int
  | FLOAT                             # Float
  | IDENT                             # Name
  ;

DIRECTIVE : '.' [a-zA-Z_] [a-zA-Z_0-9]* ;
FLOAT     : DIGITS '.' DIGITS? EXPONENT? | DIGITS EXPONENT ;
INT       : '0' [xX] [0-9a-fA-F_]+ | '0' [bB] [01_]+ | DIGITS ;
IDENT     : [a-zA-Z_] [a-zA-Z_0-9]* ;
STRING    : '"' (~["\\\r\n] | '\\' ["\\nrt])* '"' ;
COMMENT   : ('#' | ';') ~[\r\n]* -> skip ;
WS        : [ \t]+ -> skip ;
NEWLINE   : '\r'? '\n' ;
ERRCHAR   : . ;

fragment DIGITS   : [0-9] [0-9_]* ;
fragment EXPONENT : [eE] [+-]? [0-9]+ ;
