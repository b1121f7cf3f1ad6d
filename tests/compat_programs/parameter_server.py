# A Ray-docs style parameter server, written for Ray; run with `import shoal as ray`.
import sys

import numpy as np

ray = __import__(sys.argv[1] if len(sys.argv) > 1 else "ray")


@ray.remote
class ParameterServer:
    def __init__(self, dim):
        self.params = np.zeros(dim)

    def apply_gradients(self, *gradients):
        self.params -= 0.1 * np.sum(gradients, axis=0)
        return self.params

    def get_params(self):
        return self.params


@ray.remote
def compute_gradient(params, seed):
    rng = np.random.default_rng(seed)
    return params - rng.normal(1.0, 0.0, size=params.shape)  # deterministic: params - 1


if __name__ == "__main__":
    ray.init(num_cpus=2)
    ps = ParameterServer.remote(10)
    params = ps.get_params.remote()
    for _step in range(5):
        grads = [compute_gradient.remote(params, seed) for seed in range(4)]
        params = ps.apply_gradients.remote(*grads)
    final = ray.get(params)
    print("RESULT", round(float(final.sum()), 6))
    ray.shutdown()
