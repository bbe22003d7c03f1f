"""Run on the GPU box on 2026-12-07 (scripts/gpu_box.sh run python3 THIS): n processes at once, each a MujocoVecEnv
of 17 envs with both 96x96 cameras, stepping then rendering in lock step as the grid's workers do. Prints each
n's mean time of one `observations` call (17 envs, 2 pictures each) and of one step. Output beside it."""
import multiprocessing as mp, time, numpy as np, sys
def work(bar, q):
    from leisaac_tasks.vec_env import MujocoVecEnv
    from leisaac_tasks.scenarios import Scenario
    v = MujocoVecEnv(17, cameras=("front", "wrist"), image_size=96)
    v.reset_envs(range(17), [Scenario.parse("H,H")] * 17, ["pick up the cheese"] * 17, range(17))
    bar.wait(); ts = []; ps = []
    for k in range(10):
        t = time.perf_counter(); v.step(np.zeros((17, 6))); ps.append(time.perf_counter() - t)
        bar.wait(); t = time.perf_counter(); v.observations(range(17)); ts.append(time.perf_counter() - t); bar.wait()
    q.put((np.mean(ts) * 1000, np.mean(ps) * 1000))
if __name__ == "__main__":
    ctx = mp.get_context("spawn")
    for n in (1, 4, 8, 15):
        bar = ctx.Barrier(n); q = ctx.Queue()
        ps = [ctx.Process(target=work, args=(bar, q)) for _ in range(n)]
        [p.start() for p in ps]; r = [q.get() for _ in ps]; [p.join() for p in ps]
        print(n, "procs: observe 17 envs ms mean/max", round(np.mean([a for a, b in r]), 1), round(max(a for a, b in r), 1), "step ms", round(np.mean([b for a, b in r]), 1), flush=True)
