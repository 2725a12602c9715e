// Grammar of sohuc IR text; IrParser turns the tree into a Module and IrPrinter writes the same
// syntax. No rule is recursive (dense data is a single token that IrParser reads), so no input,
// however deeply nested, can overflow the stack.
parser grammar IrSyntax;

options { tokenVocab = IrLexer; }

module_ : MODULE SYMBOL_ID LBRACE (weightDecl | function)* RBRACE EOF ;

weightDecl : WEIGHT SYMBOL_ID COLON tensorType EQUAL weightData ;

weightData
    : FILE STRING OFFSET INT LENGTH INT # fileData
    | INLINE HEX                        # inlineData
    | SHAPE_ONLY                        # shapeOnlyData
    ;

function
    : FUNC SYMBOL_ID LPAREN (argument (COMMA argument)*)? RPAREN
      ARROW LPAREN (output (COMMA output)*)? RPAREN
      LBRACE node* returnStmt RBRACE
    ;

argument : VALUE_ID COLON tensorType ;

output : STRING COLON tensorType ;

// Operands are inline rather than a rule of their own, so that after `add %a` the expected
// tokens include ',' (ANTLR computes them within the current rule).
node : results+=VALUE_ID (COMMA results+=VALUE_ID)* EQUAL opName
       (operands+=VALUE_ID (COMMA operands+=VALUE_ID)*)? attributes?
       COLON tensorType (COMMA tensorType)* location? ;

opName : BARE_ID | keyword ;

attributes : LBRACE (attribute (COMMA attribute)*)? RBRACE ;

attribute : attrName EQUAL attrValue ;

attrName : BARE_ID | keyword ;

attrValue
    : number                                            # numberAttr
    | TRUE                                              # trueAttr
    | FALSE                                             # falseAttr
    | STRING                                            # stringAttr
    | LBRACK (dim (COMMA dim)*)? RBRACK                 # listAttr
    | BARE_ID                                           # elementTypeAttr
    | SYMBOL_ID                                         # symbolAttr
    | DENSE_DATA COLON tensorType                       # denseAttr
    ;

number : MINUS? (INT | FLOAT | INF) | NAN ;

location : LOC LPAREN STRING RPAREN ;

returnStmt : RETURN (VALUE_ID (COMMA VALUE_ID)*)? ;

tensorType : TENSOR_OPEN (dim X)* ELEMENT_TYPE TENSOR_CLOSE ;

// A polynomial over symbols: 384, ?seq, ?past+?seq, 2*?a*?b-1.
dim : MINUS? dimTerm ((PLUS | MINUS) dimTerm)* ;

dimTerm : dimFactor (STAR dimFactor)* ;

dimFactor : INT | DIM_SYMBOL ;

keyword
    : MODULE | WEIGHT | FUNC | RETURN | FILE | OFFSET | LENGTH | INLINE | SHAPE_ONLY | LOC
    | DENSE | TRUE | FALSE | INF | NAN
    ;
