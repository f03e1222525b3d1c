#!/usr/bin/env python3
"""Regenerate src/pixdex/taxonomy/imagenet.json: Rekognition-style labels for the 1000 ImageNet
classes, built from WordNet 3.0 (ImageNet class ids are WordNet noun synsets).

Inputs (not needed at run time; the generated JSON is committed):
- WordNet 3.0 noun data: Debian's ``wordnet-base`` (``apt-get install wordnet-base``) puts
  ``data.noun``/``index.noun`` in /usr/share/wordnet;
- the ImageNet-1k WordNet ids in class-index order (sorted): ``timm``'s wheel carries them as
  ``timm/data/_info/imagenet_synsets.txt`` (``pip download --no-deps timm`` and unzip that file).

Usage: scripts/build_taxonomy.py --synsets imagenet_synsets.txt [--wordnet /usr/share/wordnet]

Why a curated list of parent synsets: WordNet's hypernym chains are long and mostly abstract
(tow truck → truck → motor vehicle → self-propelled vehicle → wheeled vehicle → vehicle →
conveyance → instrumentality → artifact → whole → object → entity). Rekognition answers "Truck,
Vehicle, Transportation". A block-list of abstract nodes still leaves "placental", "chordate",
"self-propelled vehicle"; an allow-list of label-worthy synsets (with Rekognition's names where
they differ from WordNet's) gives the answers people search for.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "pixdex" / "taxonomy" / "imagenet.json"

# synset (NLTK-style lemma.n.NN) → label name shown to users. Order does not matter; parents are
# listed most specific first by their depth in the hypernym graph.
PARENTS: dict[str, str] = {
    # animals
    "animal.n.01": "Animal",
    "domestic_animal.n.01": "Pet",
    "mammal.n.01": "Mammal",
    "bird.n.01": "Bird",
    "fish.n.01": "Fish",
    "reptile.n.01": "Reptile",
    "amphibian.n.03": "Amphibian",
    "insect.n.01": "Insect",
    "arachnid.n.01": "Arachnid",
    "spider.n.01": "Spider",
    "invertebrate.n.01": "Invertebrate",
    "crustacean.n.01": "Crustacean",
    "mollusk.n.01": "Mollusk",
    "sea_animal.n.01": "Sea Life",
    "dog.n.01": "Dog",
    "canine.n.02": "Canine",
    "wolf.n.01": "Wolf",
    "fox.n.01": "Fox",
    "terrier.n.01": "Terrier",
    "hound.n.01": "Hound",
    "retriever.n.01": "Retriever",
    "spaniel.n.01": "Spaniel",
    "shepherd_dog.n.01": "Sheepdog",
    "poodle.n.01": "Poodle",
    "feline.n.01": "Feline",
    "cat.n.01": "Cat",
    "big_cat.n.01": "Big Cat",
    "bear.n.01": "Bear",
    "primate.n.02": "Primate",
    "monkey.n.01": "Monkey",
    "ape.n.01": "Ape",
    "rodent.n.01": "Rodent",
    "rabbit.n.01": "Rabbit",
    "bovid.n.01": "Bovine",
    "cattle.n.01": "Cattle",
    "sheep.n.01": "Sheep",
    "goat.n.01": "Goat",
    "antelope.n.01": "Antelope",
    "deer.n.01": "Deer",
    "equine.n.01": "Equine",
    "horse.n.01": "Horse",
    "swine.n.01": "Pig",
    "elephant.n.01": "Elephant",
    "whale.n.02": "Whale",
    "seal.n.09": "Seal",
    "snake.n.01": "Snake",
    "lizard.n.01": "Lizard",
    "turtle.n.02": "Turtle",
    "crocodilian_reptile.n.01": "Crocodile",
    "frog.n.01": "Frog",
    "shark.n.01": "Shark",
    "bird_of_prey.n.01": "Bird of Prey",
    "parrot.n.01": "Parrot",
    "owl.n.01": "Owl",
    "duck.n.01": "Duck",
    "wading_bird.n.01": "Wading Bird",
    "seabird.n.01": "Seabird",
    "songbird.n.01": "Songbird",
    "poultry.n.02": "Poultry",
    "butterfly.n.01": "Butterfly",
    "beetle.n.01": "Beetle",
    "bee.n.01": "Bee",
    "ant.n.01": "Ant",
    "crab.n.01": "Crab",
    "snail.n.01": "Snail",
    # vehicles
    "conveyance.n.03": "Transportation",
    "vehicle.n.01": "Vehicle",
    "motor_vehicle.n.01": "Motor Vehicle",
    "car.n.01": "Car",
    "truck.n.01": "Truck",
    "bus.n.01": "Bus",
    "motorcycle.n.01": "Motorcycle",
    "bicycle.n.01": "Bicycle",
    "vessel.n.02": "Watercraft",
    "boat.n.01": "Boat",
    "ship.n.01": "Ship",
    "sailing_vessel.n.01": "Sailboat",
    "aircraft.n.01": "Aircraft",
    "airplane.n.01": "Airplane",
    "locomotive.n.01": "Locomotive",
    "car.n.02": "Train",
    "train.n.01": "Train",
    "military_vehicle.n.01": "Military Vehicle",
    "sled.n.01": "Sled",
    "trailer.n.04": "Trailer",
    "van.n.05": "Van",
    "wheel.n.01": "Wheel",
    # food
    "food.n.01": "Food",
    "food.n.02": "Food",
    "produce.n.01": "Produce",
    "edible_fruit.n.01": "Fruit",
    "vegetable.n.01": "Vegetable",
    "dish.n.02": "Meal",
    "dessert.n.01": "Dessert",
    "baked_goods.n.01": "Baked Goods",
    "bread.n.01": "Bread",
    "sandwich.n.01": "Sandwich",
    "beverage.n.01": "Beverage",
    "alcohol.n.01": "Alcohol",
    "fungus.n.01": "Fungus",
    # home and objects
    "furniture.n.01": "Furniture",
    "seat.n.03": "Seat",
    "chair.n.01": "Chair",
    "table.n.02": "Table",
    "bed.n.01": "Bed",
    "home_appliance.n.01": "Appliance",
    "kitchen_utensil.n.01": "Kitchen Utensil",
    "cutlery.n.02": "Cutlery",
    "tableware.n.01": "Tableware",
    "container.n.01": "Container",
    "bottle.n.01": "Bottle",
    "bag.n.01": "Bag",
    "box.n.01": "Box",
    "vessel.n.03": "Vessel",
    "lamp.n.01": "Lamp",
    "clock.n.01": "Clock",
    "toy.n.01": "Toy",
    "textile.n.01": "Textile",
    # clothing
    "clothing.n.01": "Clothing",
    "garment.n.01": "Garment",
    "footwear.n.02": "Footwear",
    "shoe.n.01": "Shoe",
    "headdress.n.01": "Headwear",
    "hat.n.01": "Hat",
    "helmet.n.02": "Helmet",
    "jewelry.n.01": "Jewelry",
    "accessory.n.01": "Accessories",
    "swimsuit.n.01": "Swimwear",
    # technology, tools
    "computer.n.01": "Computer",
    "electronic_equipment.n.01": "Electronics",
    "telephone.n.01": "Phone",
    "screen.n.03": "Screen",
    "display.n.06": "Monitor",
    "camera.n.01": "Camera",
    "musical_instrument.n.01": "Musical Instrument",
    "stringed_instrument.n.01": "String Instrument",
    "wind_instrument.n.01": "Wind Instrument",
    "percussion_instrument.n.01": "Percussion",
    "keyboard_instrument.n.01": "Keyboard Instrument",
    "tool.n.01": "Tool",
    "hand_tool.n.01": "Hand Tool",
    "power_tool.n.01": "Power Tool",
    "machine.n.01": "Machine",
    "weapon.n.01": "Weapon",
    "gun.n.01": "Gun",
    "sports_equipment.n.01": "Sports Equipment",
    "ball.n.01": "Ball",
    "game_equipment.n.01": "Game",
    # places and structures
    "structure.n.01": "Architecture",
    "building.n.01": "Building",
    "house.n.01": "House",
    "bridge.n.01": "Bridge",
    "place_of_worship.n.01": "Place of Worship",
    "shop.n.01": "Shop",
    "geological_formation.n.01": "Nature",
    "body_of_water.n.01": "Water",
    "shore.n.01": "Shoreline",
    "mountain.n.01": "Mountain",
    "plant.n.02": "Plant",
    "flower.n.01": "Flower",
    "tree.n.01": "Tree",
    "person.n.01": "Person",
}

# Categories: the first ancestor (or the class itself) found here decides, in this order.
CATEGORIES: list[tuple[str, str]] = [
    ("person.n.01", "Person Description"),
    ("animal.n.01", "Animals and Pets"),
    ("food.n.01", "Food and Beverage"),
    ("food.n.02", "Food and Beverage"),
    ("beverage.n.01", "Food and Beverage"),
    ("edible_fruit.n.01", "Food and Beverage"),
    ("vegetable.n.01", "Food and Beverage"),
    ("plant.n.02", "Plants and Flowers"),
    ("fungus.n.01", "Plants and Flowers"),
    ("conveyance.n.03", "Vehicles and Automotive"),
    ("wheel.n.01", "Vehicles and Automotive"),
    ("weapon.n.01", "Weapons and Military"),
    ("clothing.n.01", "Apparel and Accessories"),
    ("accessory.n.01", "Apparel and Accessories"),
    ("jewelry.n.01", "Apparel and Accessories"),
    ("footwear.n.02", "Apparel and Accessories"),
    ("headdress.n.01", "Apparel and Accessories"),
    ("bag.n.01", "Apparel and Accessories"),
    ("musical_instrument.n.01", "Hobbies and Interests"),
    ("toy.n.01", "Hobbies and Interests"),
    ("sports_equipment.n.01", "Sports"),
    ("game_equipment.n.01", "Sports"),
    ("electronic_equipment.n.01", "Technology and Computing"),
    ("computer.n.01", "Technology and Computing"),
    ("telephone.n.01", "Technology and Computing"),
    ("camera.n.01", "Technology and Computing"),
    ("furniture.n.01", "Home and Indoors"),
    ("home_appliance.n.01", "Home and Indoors"),
    ("kitchen_utensil.n.01", "Home and Indoors"),
    ("tableware.n.01", "Home and Indoors"),
    ("container.n.01", "Home and Indoors"),
    ("lamp.n.01", "Home and Indoors"),
    ("textile.n.01", "Home and Indoors"),
    ("tool.n.01", "Tools and Machinery"),
    ("machine.n.01", "Tools and Machinery"),
    ("structure.n.01", "Buildings and Architecture"),
    ("geological_formation.n.01", "Nature and Outdoors"),
    ("body_of_water.n.01", "Nature and Outdoors"),
]
DEFAULT_CATEGORY = "Everyday Objects"
MAX_PARENTS = 5

# Hypernym edges not followed for parents: WordNet files a wheeled vehicle under "container"
# (it carries things), which would make every car a Container.
SKIP_EDGES: set[tuple[str, str]] = {("wheeled_vehicle.n.01", "container.n.01")}

# Classes whose WordNet reading misleads a photo search, by ImageNet id: a new Name, extra
# aliases, and/or parents (the whole chain, replacing WordNet's) and category. Each says why.
# Names shared with the object detectors' vocabulary (taxonomy/coco.json) make the two
# analyzers' labels merge into one.
CLASS_OVERRIDES: dict[str, dict] = {
    # WordNet: a timer; "Clock" came from timepiece, which is gone from PARENTS for that reason
    "n03891332": {"parents": []},  # parking meter
    # WordNet files it under sandwich; nobody searching "sandwich" means a hot dog. The detector
    # says "Hot Dog" (two words, as people write it), so the class uses that name too.
    "n07697537": {"name": "Hot Dog", "aliases": ["Hotdog", "Frankfurter"], "parents": ["Food"]},
    # WordNet: a theater, so a Building; the class's photos are living-room TV and speaker sets
    "n03529860": {"parents": ["Electronics"], "category": "Technology and Computing"},
    # television: people type "TV"; an appliance of electronics, not an "Everyday Object"
    "n04404412": {
        "aliases": ["TV", "Telly"],
        "parents": ["Electronics"],
        "category": "Technology and Computing",
    },
    # computer mouse, remote control: electronics, as the detector files them
    "n03793489": {"parents": ["Electronics"], "category": "Technology and Computing"},
    "n04074963": {"parents": ["Electronics"], "category": "Technology and Computing"},
    # the detector's "Teddy Bear" (and never a Bear: Toy stays its only parent)
    "n04399382": {"name": "Teddy Bear", "aliases": ["Teddy"]},
    # the bird of prey; "Kite" alone is the toy the detector finds
    "n01608432": {"name": "Kite (Bird)", "drop_aliases": ["Kite"]},
    # WordNet: a punch (a drink, so Alcohol); the class's photos are cups of drinks — tableware,
    # and the same thing as the detector's "Cup"
    "n07930864": {"parents": ["Tableware"], "category": "Home and Indoors"},
}


@dataclass
class Synset:
    offset: str
    lemmas: list[str]
    hypernyms: list[str] = field(default_factory=list)


def read_wordnet(folder: Path) -> tuple[dict[str, Synset], dict[str, str]]:
    """data.noun → synsets by offset; index.noun → NLTK-style names (``dog.n.01``) → offset."""
    synsets: dict[str, Synset] = {}
    for line in (folder / "data.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):
            continue  # licence header
        fields = line.split(" | ")[0].split()
        offset, w_cnt = fields[0], int(fields[3], 16)
        lemmas = [fields[4 + 2 * i] for i in range(w_cnt)]
        lemmas = [re.sub(r"\([a-z]+\)$", "", w) for w in lemmas]  # adjective markers
        pos = 4 + 2 * w_cnt
        p_cnt = int(fields[pos])
        hypernyms = []
        for i in range(p_cnt):
            symbol, target = fields[pos + 1 + 4 * i], fields[pos + 2 + 4 * i]
            if symbol in ("@", "@i"):
                hypernyms.append(target)
        synsets[offset] = Synset(offset, lemmas, hypernyms)
    names: dict[str, str] = {}
    for line in (folder / "index.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):
            continue
        fields = line.split()
        lemma, synset_cnt = fields[0], int(fields[2])
        for sense, offset in enumerate(fields[-synset_cnt:], start=1):
            names[f"{lemma}.n.{sense:02d}"] = offset
    return synsets, names


def title(lemma: str) -> str:
    """``German_shepherd`` → ``German Shepherd``; keeps inner capitals (``iPod``) and hyphens."""
    words = lemma.replace("_", " ").split(" ")
    return " ".join(w[:1].upper() + w[1:] for w in words)


def ancestors(offset: str, synsets: dict[str, Synset], skip: set[tuple[str, str]]) -> set[str]:
    """Every hypernym of ``offset`` over all paths, except through ``skip`` edges."""
    seen: set[str] = set()
    frontier = [offset]
    while frontier:
        node = frontier.pop()
        for hyper in synsets[node].hypernyms:
            if (node, hyper) not in skip and hyper not in seen:
                seen.add(hyper)
                frontier.append(hyper)
    return seen


def depth(offset: str, synsets: dict[str, Synset], memo: dict[str, int]) -> int:
    """Longest hypernym path to the root: deeper means more specific (Mammal below Pet)."""
    if offset not in memo:
        hypers = synsets[offset].hypernyms
        memo[offset] = 1 + max((depth(h, synsets, memo) for h in hypers), default=-1)
    return memo[offset]


def all_parents(
    up: set[str],
    own: str | None,
    parent_names: dict[str, str],
    synsets: dict[str, Synset],
    memo: dict[str, int],
) -> list[str]:
    ranked = sorted((-depth(o, synsets, memo), parent_names[o]) for o in up if o in parent_names)
    parents: list[str] = []
    for _, label in ranked:
        if label not in parents and label != own:
            parents.append(label)
    return parents


def pick_parents(
    up: set[str],
    own: str | None,
    parent_names: dict[str, str],
    synsets: dict[str, Synset],
    memo: dict[str, int],
) -> list[str]:
    """Label-worthy ancestors, most specific first; when too many, keep the most specific and
    the most general (Animal, Transportation…)."""
    parents = all_parents(up, own, parent_names, synsets, memo)
    if len(parents) > MAX_PARENTS:
        parents = parents[: MAX_PARENTS - 1] + [parents[-1]]
    return parents


def build(wordnet: Path, wnids: list[str]) -> dict:
    synsets, names = read_wordnet(wordnet)
    parent_names = {}
    for key, label in PARENTS.items():
        if key not in names:
            raise SystemExit(f"unknown synset {key} in PARENTS")
        parent_names[names[key]] = label
    category_of = [(names[key], cat) for key, cat in CATEGORIES]
    skip = {(names[a], names[b]) for a, b in SKIP_EDGES}
    memo: dict[str, int] = {}

    classes = []
    first_lemma_count: dict[str, int] = {}
    for wnid in wnids:
        lemma = synsets[wnid[1:]].lemmas[0].lower()
        first_lemma_count[lemma] = first_lemma_count.get(lemma, 0) + 1
    used_names: set[str] = set()
    for index, wnid in enumerate(wnids):
        offset = wnid[1:]
        syn = synsets[offset]
        up = ancestors(offset, synsets, skip)
        lemmas = [title(w) for w in syn.lemmas]
        name = lemmas[0]
        parents = pick_parents(up, name, parent_names, synsets, memo)
        if first_lemma_count[syn.lemmas[0].lower()] > 1:
            # Two classes share a first lemma (crane the bird, crane the machine): qualify
            # both by their direct hypernym so each label means one thing.
            qualifier = title(synsets[syn.hypernyms[0]].lemmas[0])
            name = f"{name} ({qualifier})"
        if name in used_names:
            raise SystemExit(f"duplicate label name {name}")
        used_names.add(name)
        category = next((cat for o, cat in category_of if o == offset or o in up), DEFAULT_CATEGORY)
        # every label-worthy ancestor: a parent label's confidence sums these classes
        ancestors_ = all_parents(up, name, parent_names, synsets, memo)
        fix = CLASS_OVERRIDES.get(wnid, {})
        if "name" in fix:
            used_names.discard(name)
            name = fix["name"]
            used_names.add(name)
        if "parents" in fix:
            parents = list(fix["parents"])
            ancestors_ = list(fix["parents"])
        category = fix.get("category", category)
        aliases = [w for w in dict.fromkeys(lemmas + fix.get("aliases", [])) if w != name]
        aliases = [w for w in aliases if w not in parents and w not in fix.get("drop_aliases", [])]
        classes.append(
            {
                "index": index,
                "wnid": wnid,
                "Name": name,
                "Aliases": aliases,
                "Parents": parents,
                "Categories": [category],
                "Ancestors": ancestors_,
            }
        )
    # Parent labels: their own parents and category, so a "Dog" label says Canine, Mammal, Animal.
    nodes = {}
    for offset, label in parent_names.items():
        up = ancestors(offset, synsets, skip)
        parents = pick_parents(up, label, parent_names, synsets, memo)
        category = next((cat for o, cat in category_of if o == offset or o in up), DEFAULT_CATEGORY)
        entry = nodes.setdefault(label, {"Parents": parents, "Categories": [category]})
        for p in parents:  # a name used for two synsets (Food, Train): union of parents
            if p not in entry["Parents"]:
                entry["Parents"].append(p)
    return {
        "about": (
            "Labels for the ImageNet-1k classes (class index = position in the sorted WordNet "
            "ids), built from WordNet 3.0 by scripts/build_taxonomy.py; do not edit by hand."
        ),
        "classes": classes,
        "parents": dict(sorted(nodes.items())),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synsets", type=Path, required=True, help="imagenet_synsets.txt")
    ap.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    wnids = sorted(args.synsets.read_text().split())
    if len(wnids) != 1000:
        raise SystemExit(f"expected 1000 ImageNet ids, got {len(wnids)}")
    data = build(args.wordnet, wnids)
    args.out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {args.out} ({len(data['classes'])} classes, {len(data['parents'])} parents)")


if __name__ == "__main__":
    main()
