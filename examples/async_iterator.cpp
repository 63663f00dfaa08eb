// Seed "Class-based async iterator": Countdown with __aiter__/__anext__.
// In corio a class is an async iterator when it has a `next()` that yields std::optional<T>
// (std::nullopt plays StopAsyncIteration), so it reads like an AsyncGenerator.
#include <corio/corio.hpp>

#include <iostream>
#include <optional>
#include <vector>

using namespace std::chrono_literals;

class Countdown {
public:
    explicit Countdown(int start) : current_(start) {}

    corio::Coro<std::optional<int>> next() {
        if (current_ <= 0) co_return std::nullopt;  // raise StopAsyncIteration
        current_ -= 1;
        co_await corio::sleep(100ms);
        co_return current_ + 1;
    }

private:
    int current_;
};

corio::Coro<int> main_coro() {
    Countdown countdown(3);
    std::vector<int> got;
    while (auto n = co_await countdown.next()) {  // async for n in Countdown(3):
        std::cout << *n << "\n";
        got.push_back(*n);
    }
    co_return got == std::vector<int>{3, 2, 1} ? 0 : 1;
}

int main() { return corio::run(main_coro()); }
