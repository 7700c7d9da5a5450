import unittest

from app.main import application, greet


def call(path: str, query: str = "") -> tuple[str, bytes]:
    seen: list[str] = []
    body = b"".join(application({"PATH_INFO": path, "QUERY_STRING": query},
                                lambda status, headers: seen.append(status)))
    return seen[0], body


class HelloTest(unittest.TestCase):
    def test_greets_by_name(self) -> None:
        self.assertEqual(greet(" ada "), "hello, ada!")

    def test_greets_the_world_without_a_name(self) -> None:
        self.assertEqual(greet(""), "hello, world!")

    def test_health_answers_200(self) -> None:
        status, _ = call("/healthz")
        self.assertTrue(status.startswith("200"))

    def test_unknown_path_is_404(self) -> None:
        status, _ = call("/nope")
        self.assertTrue(status.startswith("404"))

    def test_hello_route(self) -> None:
        status, body = call("/hello", "name=bob")
        self.assertTrue(status.startswith("200"))
        self.assertIn(b"hello, bob!", body)


if __name__ == "__main__":
    unittest.main()
