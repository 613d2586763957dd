"""The photo questions of `ember eval vision`: written for this project over the real photographs that
scikit-image ships in `skimage/data` (data only; scikit-image is never imported).

Each question names its photo, what a correct answer must contain (one of `accept`, or all of them when
`all_of`, as whole words) and
what it must not (`reject`: the other candidates, so "red or blue" is not a right answer to "what colour").
Questions ask what a person would: which animal or object, how many people, what the text says, what
colour, yes or no. They were written from looking at the photos, not from the specialists' output.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    image: str
    question: str
    accept: tuple[str, ...]
    reject: tuple[str, ...] = ()
    kind: str = ""
    all_of: bool = False  # every accepted answer must be there (e.g. both colours of two)


NUMBERS = ("0", "1", "2", "3", "4", "5", "6", "zero", "one", "two", "three", "four", "five", "six", "nobody", "none")


def count(image: str, question: str, n: int) -> Question:
    """A how-many question: the right number (digit or word) and no other."""
    words = {0: ("0", "zero", "none", "nobody"), 1: ("1", "one"), 2: ("2", "two"), 3: ("3", "three")}[n]
    return Question(image, question, words, tuple(w for w in NUMBERS if w not in words), "count")


def yes_no(image: str, question: str, answer: bool) -> Question:
    right, wrong = ("yes", "no") if answer else ("no", "yes")
    return Question(image, f"{question} Answer yes or no.", (right,), (wrong,), "yes/no")


PEOPLE = "How many people are in this picture?"
COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "gray", "grey")


def colour(image: str, question: str, *answers: str) -> Question:
    return Question(image, question, answers, tuple(c for c in COLOURS if c not in answers), "colour")


PHOTO_QUESTIONS: tuple[Question, ...] = (
    # chelsea.png: a tabby cat's face, close up
    Question("chelsea.png", "What animal is in this picture?", ("cat", "kitten"), ("dog", "tiger", "fox"), "animal"),
    Question("chelsea.png", "Is the animal in the photo a cat or a dog?", ("cat",), ("dog",), "animal"),
    yes_no("chelsea.png", "Is there a dog in this image?", False),
    yes_no("chelsea.png", "Is there a cat in this image?", True),
    count("chelsea.png", PEOPLE, 0),
    colour("chelsea.png", "What colour is the cat's fur?", "brown", "orange", "ginger"),
    # astronaut.png: astronaut Eileen Collins in an orange suit, a flag and a shuttle model behind her
    count("astronaut.png", PEOPLE, 1),
    yes_no("astronaut.png", "Is there a person in this picture?", True),
    yes_no("astronaut.png", "Is there an animal in this picture?", False),
    colour("astronaut.png", "What colour is the person's suit?", "orange"),
    # camera.png: the cameraman, a man with a camera on a tripod, in black and white
    count("camera.png", PEOPLE, 1),
    Question("camera.png", "What is the camera standing on?", ("tripod",), (), "object"),
    Question(
        "camera.png",
        "Is this photo in colour or in black and white?",
        ("black and white", "grayscale", "greyscale", "monochrome"),
        ("in colour", "in color", "colorful", "colourful"),
        "colour",
    ),
    yes_no("camera.png", "Is there a person in this picture?", True),
    # coffee.png: a cup of coffee on a saucer, on a wooden table
    Question(
        "coffee.png", "What drink is in the cup?", ("coffee", "espresso", "cappuccino", "latte"), ("tea",), "object"
    ),
    Question("coffee.png", "What is the drink served in?", ("cup", "mug", "teacup"), ("glass", "bottle"), "object"),
    count("coffee.png", PEOPLE, 0),
    yes_no("coffee.png", "Is there a cup in this picture?", True),
    colour("coffee.png", "What colour is the saucer?", "red"),
    # motorcycle_left.png: a red motorcycle in a garage
    Question(
        "motorcycle_left.png",
        "What vehicle is shown in this picture?",
        ("motorcycle", "motorbike"),
        ("car", "bicycle", "truck", "bus"),
        "object",
    ),
    count("motorcycle_left.png", PEOPLE, 0),
    yes_no("motorcycle_left.png", "Is there a car in this picture?", False),
    colour("motorcycle_left.png", "What colour is the motorcycle's fuel tank?", "red"),
    # motorcycle_right.png: the same scene from the right eye of a stereo pair
    yes_no("motorcycle_right.png", "Is there a motorcycle in this picture?", True),
    # horse.png: a black horse silhouette on white
    Question("horse.png", "What animal is shown?", ("horse", "pony"), ("dog", "cow", "cat"), "animal"),
    colour("horse.png", "What colour is the animal?", "black"),
    count("horse.png", "How many animals are in this picture?", 1),
    yes_no("horse.png", "Is there a horse in this picture?", True),
    # rocket.jpg: a rocket on its launch pad at dusk
    Question("rocket.jpg", "What is standing on the launch pad?", ("rocket",), ("airplane", "car"), "object"),
    count("rocket.jpg", PEOPLE, 0),
    Question(
        "rocket.jpg", "Was this photo taken by day or at night?", ("night", "dusk", "dark"), ("day", "daytime"), "scene"
    ),
    # page.png: a scanned textbook page titled "Region-based segmentation"
    Question("page.png", "What is the title of this page?", ("segmentation",), (), "text"),
    Question("page.png", "The text says to determine markers of which objects?", ("coins",), (), "text"),
    yes_no("page.png", "Does this image contain text?", True),
    count("page.png", PEOPLE, 0),
    # coins.png: old coins on a dark background
    Question("coins.png", "What objects are shown in this picture?", ("coin", "coins"), ("clock",), "object"),
    count("coins.png", PEOPLE, 0),
    # logo.png: scikit-image's logo, green and orange
    Question("logo.png", "Name the two main colours of this logo.", ("green", "orange"), (), "colour", True),
    # chessboard_RGB.png: a black and white checkerboard
    Question("chessboard_RGB.png", "What two colours make up this pattern?", ("black", "white"), (), "colour", True),
    # hubble_deep_field.jpg: the Hubble deep field, galaxies on black
    Question("hubble_deep_field.jpg", "What colour is most of this image?", ("black",), ("white", "blue"), "colour"),
    Question(
        "hubble_deep_field.jpg",
        "Does this image show a city, a forest or outer space?",
        ("space",),
        ("city", "forest"),
        "scene",
    ),
    # retina.jpg: a photo of the back of an eye
    colour("retina.jpg", "What is the main colour of this image?", "red", "orange"),
    # color.png: a colour wheel on black
    yes_no("color.png", "Does this image contain many different colours?", True),
    # moon.png, grass.png: grey textures
    colour("moon.png", "What colour is this image?", "gray", "grey"),
    yes_no("grass.png", "Is this a colour photo?", False),
    # text.png: handwriting, no people
    yes_no("text.png", "Does this image contain writing?", True),
    yes_no("text.png", "Is there a cat in this image?", False),
)
