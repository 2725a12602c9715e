package dev.sohuc.onnx;

import dev.sohuc.ir.IrException;

/**
 * A model the importer cannot read or does not support. The message is one line and names the
 * file and the node, tensor or field at fault.
 */
public final class OnnxImportException extends IrException {
  public OnnxImportException(String message) {
    super(message);
  }

  public OnnxImportException(String message, Throwable cause) {
    super(message, cause);
  }
}
