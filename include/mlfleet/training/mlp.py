"""A small PyTorch MLP behind the scikit-learn estimator API; uses CUDA when a GPU is present.

Inputs are standardised inside `fit` (statistics from the training fold only), so the model
is a drop-in estimator for cross-validation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin


def _device(requested: str) -> Any:
    import torch

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


class _MLPBase(BaseEstimator):
    def __init__(
        self,
        hidden_units: int = 64,
        n_layers: int = 2,
        dropout: float = 0.0,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        epochs: int = 30,
        batch_size: int = 256,
        device: str = "auto",
        random_state: int | None = 0,
    ) -> None:
        self.hidden_units = hidden_units
        self.n_layers = n_layers
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state

    def _network(self, n_in: int, n_out: int) -> Any:
        from torch import nn

        layers: list[Any] = []
        width = n_in
        for _ in range(self.n_layers):
            layers += [nn.Linear(width, self.hidden_units), nn.ReLU()]
            if self.dropout:
                layers.append(nn.Dropout(self.dropout))
            width = self.hidden_units
        layers.append(nn.Linear(width, n_out))
        return nn.Sequential(*layers)

    def _fit(self, X: Any, y: np.ndarray, n_out: int, loss_fn: Any, y_dtype: Any) -> "_MLPBase":
        import torch

        if self.random_state is not None:
            torch.manual_seed(self.random_state)
        X = np.asarray(X, dtype=np.float32)
        self.mean_ = X.mean(axis=0)
        self.scale_ = X.std(axis=0) + 1e-6
        self.n_features_in_ = X.shape[1]
        device = _device(self.device)
        self.device_ = str(device)
        xt = torch.from_numpy((X - self.mean_) / self.scale_).to(device)
        yt = torch.as_tensor(y, dtype=y_dtype).to(device)
        net = self._network(X.shape[1], n_out).to(device)
        optimizer = torch.optim.Adam(net.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        generator = torch.Generator(device="cpu")
        if self.random_state is not None:
            generator.manual_seed(self.random_state)
        n = len(xt)
        net.train()
        for _ in range(self.epochs):
            order = torch.randperm(n, generator=generator).to(device)
            for start in range(0, n, self.batch_size):
                idx = order[start : start + self.batch_size]
                optimizer.zero_grad()
                loss = loss_fn(net(xt[idx]), yt[idx])
                loss.backward()
                optimizer.step()
        net.eval()
        self.network_ = net.to("cpu")
        return self

    def _forward(self, X: Any) -> np.ndarray:
        import torch

        X = (np.asarray(X, dtype=np.float32) - self.mean_) / self.scale_
        with torch.no_grad():
            return self.network_(torch.from_numpy(X)).numpy()


class MLPClassifier(ClassifierMixin, _MLPBase):
    def fit(self, X: Any, y: Any) -> "MLPClassifier":
        import torch

        self.classes_, encoded = np.unique(np.asarray(y), return_inverse=True)
        return self._fit(X, encoded, len(self.classes_), torch.nn.CrossEntropyLoss(), torch.long)

    def predict_proba(self, X: Any) -> np.ndarray:
        logits = self._forward(X)
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class MLPRegressor(RegressorMixin, _MLPBase):
    def fit(self, X: Any, y: Any) -> "MLPRegressor":
        import torch

        y = np.asarray(y, dtype=np.float32)
        self.y_mean_, self.y_scale_ = float(y.mean()), float(y.std() + 1e-6)
        target = ((y - self.y_mean_) / self.y_scale_).reshape(-1, 1)
        return self._fit(X, target, 1, torch.nn.MSELoss(), torch.float32)

    def predict(self, X: Any) -> np.ndarray:
        return self._forward(X).ravel() * self.y_scale_ + self.y_mean_
