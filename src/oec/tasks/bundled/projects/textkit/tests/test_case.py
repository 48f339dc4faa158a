from textkit import split_words, to_camel, to_kebab, to_pascal, to_snake, to_title


def test_split_camel_case():
    assert split_words("parseJsonValue") == ["parse", "Json", "Value"]


def test_split_separators_and_digits():
    assert split_words("user_id-2 name") == ["user", "id", "2", "name"]


def test_trailing_acronym():
    assert split_words("userID") == ["user", "ID"]


def test_to_snake_from_camel():
    assert to_snake("parseJsonValue") == "parse_json_value"


def test_to_kebab_from_spaces():
    assert to_kebab("Hello big World") == "hello-big-world"


def test_to_camel_from_snake():
    assert to_camel("max_retry_count") == "maxRetryCount"


def test_to_camel_empty():
    assert to_camel("__") == ""


def test_to_pascal():
    assert to_pascal("http-status code") == "HttpStatusCode"


def test_to_title_keeps_small_words_lowercase():
    assert to_title("a tale of two cities") == "A Tale of Two Cities"


def test_to_title_capitalises_last_small_word():
    assert to_title("what it is for") == "What It Is For"
