// Seed "Basic Async Function": a coroutine that simulates I/O, awaited from main.
//   async def fetch_data(url: str) -> dict:
//       await asyncio.sleep(1)  # Simulated I/O
//       return {"url": url, "data": "..."}
#include <corio/corio.hpp>

#include <iostream>
#include <map>
#include <string>

using namespace std::chrono_literals;
using Dict = std::map<std::string, std::string>;

corio::Coro<Dict> fetch_data(std::string url) {
    co_await corio::sleep(100ms);  // simulated I/O (the seed sleeps 1 s; shortened so the tests stay quick)
    co_return Dict{{"url", url}, {"data", "..."}};
}

corio::Coro<int> main_coro() {
    Dict result = co_await fetch_data("https://api.example.com");
    std::cout << "{url: " << result["url"] << ", data: " << result["data"] << "}\n";
    co_return result["url"] == "https://api.example.com" ? 0 : 1;
}

int main() { return corio::run(main_coro()); }
