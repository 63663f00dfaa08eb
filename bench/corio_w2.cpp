// W2 (peers' convention): two tasks pass a token through two Queue(1). N = total hand-offs.
#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>

corio::Coro<> pong(corio::Queue<long>* in, corio::Queue<long>* out, long rounds) {
    for (long i = 0; i < rounds; ++i) {
        long v = co_await in->get();
        co_await out->put(v + 1);
    }
}

corio::Coro<int> run_w2(long n) {
    long rounds = n / 2;
    corio::Queue<long> a(1), b(1);
    auto t0 = std::chrono::steady_clock::now();
    auto p = corio::create_task(pong(&a, &b, rounds));
    long tok = 0;
    for (long i = 0; i < rounds; ++i) {
        co_await a.put(tok + 1);
        tok = co_await b.get();
    }
    co_await p;
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("RESULT w2 handoffs=%ld tok=%ld ns_per_handoff=%.1f\n", rounds * 2, tok, dt * 1e9 / double(rounds * 2));
    co_return 0;
}

int main(int argc, char** argv) {
    long n = argc > 1 ? std::atol(argv[1]) : 1000000;
    return corio::run(run_w2(n));
}
