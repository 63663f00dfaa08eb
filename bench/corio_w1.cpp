// W1 (peers' convention, ../shared/peers/README.md): create N trivial tasks, then await all.
#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

corio::Coro<long> trivial(long i) { co_return i; }

corio::Coro<int> run_w1(long n) {
    // As the peers do, the timed part includes the handles' vector and freeing every task (Tokio
    // drops each JoinHandle as it is awaited; Asio frees its coroutines inside run()).
    auto t0 = std::chrono::steady_clock::now();
    std::vector<corio::Task<long>> tasks;
    tasks.reserve(std::size_t(n));
    for (long i = 0; i < n; ++i) tasks.push_back(corio::create_task(trivial(i)));
    long sum = 0;
    for (auto& t : tasks) {
        corio::Task<long> joined = std::move(t);
        sum += co_await std::move(joined);
    }
    tasks = {};
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("RESULT w1 n=%ld sum=%ld ns_per_task=%.1f\n", n, sum, n ? dt * 1e9 / double(n) : 0.0);
    co_return 0;
}

int main(int argc, char** argv) {
    long n = argc > 1 ? std::atol(argv[1]) : 1000000;
    return corio::run(run_w1(n));
}
