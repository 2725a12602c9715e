package dev.sohuc.passes.rewrite;

import dev.sohuc.ir.Node;

import java.util.Optional;
import java.util.Set;

/**
 * One small, named rewrite: it looks at a root node and either returns the replacement of the
 * root's value or empty. The algebra lives in a comment next to each rule's definition, e.g.
 * {@code // add(x, 0) -> x}. A rule may build helper ops through {@link RewriteContext#add};
 * when it then returns empty, the driver removes them again.
 */
public interface RewriteRule {

  /** Short kebab-case name, used in pass statistics: {@code add-zero}. */
  String name();

  /** Mnemonics of the root ops this rule can match; the driver only offers those. */
  Set<String> roots();

  Optional<Replacement> match(Node root, RewriteContext cx);

  /** The body of a rule, for {@link #of}. */
  @FunctionalInterface
  interface Matcher {
    Optional<Replacement> match(Node root, RewriteContext cx);
  }

  static RewriteRule of(String name, Set<String> roots, Matcher matcher) {
    return new RewriteRule() {
      @Override
      public String name() {
        return name;
      }

      @Override
      public Set<String> roots() {
        return roots;
      }

      @Override
      public Optional<Replacement> match(Node root, RewriteContext cx) {
        return matcher.match(root, cx);
      }

      @Override
      public String toString() {
        return name;
      }
    };
  }
}
