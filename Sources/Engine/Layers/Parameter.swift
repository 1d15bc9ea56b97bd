/// A trainable tensor with its gradient and SGD momentum buffer. `decay` says whether L2
/// weight decay applies (conv and linear weights yes; batch-norm parameters and biases no).
public final class Parameter: @unchecked Sendable {
  public let name: String
  public let value: Tensor
  public let grad: Tensor
  public let momentum: Tensor
  public let decay: Bool

  init(_ name: String, _ shape: [Int], decay: Bool) {
    self.name = name
    self.value = Tensor(shape)
    self.grad = Tensor(shape)
    self.momentum = Tensor(shape)
    self.decay = decay
  }
}
