#!/usr/bin/env python3
"""Generate kailash_app/data/taxonomy.json: a UNSPSC-style 4-level product taxonomy.

Deterministic: the output depends only on the table below (no randomness, sorted
keys), so re-running it gives byte-identical JSON.  Codes are 8 digits:
segment SS000000, family SSFF0000, class SSFFCC00, commodity SSFFCCNN.

    python3 tools/make_taxonomy.py [OUTPUT]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# segment -> family -> class -> ["Commodity title|keywords of its description", ...]
TREE: dict[str, dict[str, dict[str, list[str]]]] = {
    "Tools and general machinery": {
        "Power tools": {
            "Drilling tools": [
                "Cordless drill drivers|battery cordless drill driver 12V 18V 20V lithium-ion",
                "Hammer drills|percussion hammer drill for masonry and concrete corded",
                "Rotary hammers|SDS plus SDS max rotary hammer chiselling concrete",
                "Impact drivers|cordless impact driver hex shank screws bolts torque",
                "Drill presses|bench pillar drill press stationary drilling machine",
                "Magnetic drills|magnetic base core drill steel fabrication",
            ],
            "Cutting power tools": [
                "Circular saws|handheld circular saw blade wood cutting cordless corded",
                "Jigsaws|jigsaw reciprocating blade curved cuts wood metal",
                "Reciprocating saws|sabre saw demolition pipe cutting",
                "Angle grinders|angle grinder disc cutting grinding metal 115mm 125mm",
                "Mitre saws|compound mitre chop saw crosscut trim",
                "Table saws|table saw rip fence workshop",
            ],
            "Sanding and finishing tools": [
                "Orbital sanders|random orbital sander sanding discs wood finishing",
                "Belt sanders|belt sander abrasive belt stock removal",
                "Polishers|rotary polisher buffing car paint",
                "Planers|electric hand planer wood thickness",
                "Routers|plunge router milling edges wood",
            ],
            "Fastening power tools": [
                "Nail guns|nailer pneumatic cordless framing nails brads",
                "Staple guns|electric stapler tacker staples upholstery",
                "Screw guns|drywall screwdriver collated screws plasterboard",
                "Rivet tools|rivet gun blind rivets nut setter",
            ],
        },
        "Hand tools": {
            "Wrenches and spanners": [
                "Combination spanners|open end ring spanner metric set",
                "Adjustable wrenches|adjustable spanner shifting wrench",
                "Torque wrenches|click torque wrench calibrated Nm",
                "Socket sets|socket ratchet set half inch quarter inch drive",
                "Pipe wrenches|pipe wrench stillson plumbing",
            ],
            "Screwdrivers and bits": [
                "Screwdriver sets|slotted phillips pozidriv screwdriver set insulated",
                "Bit sets|screwdriver bits torx hex holder set",
                "Precision screwdrivers|precision electronics screwdriver small",
                "Hex keys|allen key hex key L-shaped set",
            ],
            "Pliers and cutters": [
                "Combination pliers|pliers gripping cutting insulated 1000V",
                "Wire strippers|wire stripper crimping tool cable",
                "Side cutters|diagonal cutting nippers wire",
                "Bolt cutters|bolt cutter chain padlock",
            ],
            "Hammers and striking tools": [
                "Claw hammers|claw hammer nails steel fibreglass handle",
                "Sledgehammers|sledge hammer demolition club hammer",
                "Mallets|rubber mallet soft face",
                "Chisels|wood chisel cold chisel set",
            ],
            "Measuring tools": [
                "Tape measures|measuring tape 5m 8m steel blade",
                "Spirit levels|spirit level bubble aluminium",
                "Laser levels|cross line laser level self-levelling",
                "Calipers|digital vernier caliper measurement mm",
                "Laser distance meters|laser rangefinder distance measurement",
            ],
        },
        "Workshop machinery": {
            "Compressors": [
                "Piston compressors|air compressor tank litre bar pneumatic",
                "Screw compressors|rotary screw compressor industrial",
                "Portable compressors|portable compact air compressor tyre",
            ],
            "Welding equipment": [
                "MIG welders|MIG MAG welding machine wire feed",
                "TIG welders|TIG welding inverter argon",
                "Stick welders|MMA arc welder electrode",
                "Welding helmets|auto darkening welding helmet mask",
            ],
            "Lifting equipment": [
                "Chain hoists|manual chain hoist block lifting",
                "Pallet trucks|hand pallet truck jack forks",
                "Car jacks|hydraulic trolley jack bottle jack",
                "Lifting slings|round sling webbing lifting strap",
            ],
        },
    },
    "Electrical equipment and components": {
        "Electrical cables and wires": {
            "Power cables": [
                "Installation cables|NYM cable installation wire 3x1.5 3x2.5 mm2",
                "Armoured cables|steel wire armoured SWA cable underground",
                "Flexible cables|flexible rubber cable H07RN-F extension",
                "Ribbon cables|flat ribbon cable IDC",
            ],
            "Data cables": [
                "Network cables|ethernet cable Cat6 Cat6a patch RJ45 LAN",
                "Fibre optic cables|fiber optic cable single mode multimode",
                "Coaxial cables|coax cable antenna satellite 75 ohm",
                "USB cables|USB-C cable charging data",
                "HDMI cables|HDMI cable video 4K",
            ],
            "Cable management": [
                "Cable ties|nylon cable ties zip ties",
                "Cable trunking|cable duct trunking PVC",
                "Cable glands|cable gland IP68 brass nylon",
                "Conduits|electrical conduit corrugated pipe",
            ],
        },
        "Lighting": {
            "Lamps": [
                "LED bulbs|LED lamp bulb E27 E14 warm white",
                "Fluorescent tubes|fluorescent tube T8 T5",
                "Halogen lamps|halogen spot GU10 MR16",
                "LED tubes|LED tube replacement T8",
            ],
            "Luminaires": [
                "LED panels|LED panel ceiling office 600x600",
                "Floodlights|LED floodlight outdoor IP65",
                "High bay lights|LED high bay warehouse",
                "Emergency lights|emergency exit light battery backup",
                "Street lights|street lamp LED outdoor pole",
            ],
            "Portable lighting": [
                "Flashlights|torch flashlight LED rechargeable",
                "Headlamps|headlamp head torch LED",
                "Work lights|work light LED site lamp tripod",
            ],
        },
        "Electrical distribution": {
            "Circuit protection": [
                "Circuit breakers|miniature circuit breaker MCB B16 C16",
                "Residual current devices|RCD RCCB earth leakage 30mA",
                "Fuses|cartridge fuse HRC fuse link",
                "Surge protectors|surge protection device SPD",
            ],
            "Switches and sockets": [
                "Wall switches|light switch rocker flush mounted",
                "Wall sockets|power socket outlet schuko",
                "Dimmers|LED dimmer switch rotary",
                "Extension leads|power strip multi socket extension lead",
            ],
            "Enclosures": [
                "Distribution boards|consumer unit distribution board",
                "Junction boxes|junction box IP65 terminal",
                "Control cabinets|steel control cabinet enclosure",
            ],
        },
        "Batteries and power supply": {
            "Batteries": [
                "Alkaline batteries|AA AAA alkaline battery",
                "Rechargeable batteries|NiMH rechargeable battery AA",
                "Lithium-ion battery packs|lithium-ion battery pack 18V power tool",
                "Lead acid batteries|sealed lead acid battery 12V AGM",
                "Button cells|coin cell CR2032 battery",
            ],
            "Power supplies": [
                "DC power supplies|switching power supply 24V DIN rail",
                "Uninterruptible power supplies|UPS backup power",
                "Battery chargers|battery charger power tool car",
                "Inverters|power inverter 12V 230V",
            ],
            "Generators": [
                "Portable generators|petrol generator portable kVA",
                "Solar panels|photovoltaic solar panel module watt",
                "Diesel generators|diesel generator standby",
            ],
        },
    },
    "Information technology and telecommunications": {
        "Computers": {
            "Personal computers": [
                "Laptops|notebook laptop computer 14 inch 15 inch",
                "Desktop computers|desktop PC tower workstation",
                "Tablets|tablet computer touchscreen",
                "Thin clients|thin client terminal",
            ],
            "Servers and storage": [
                "Rack servers|rack mount server 1U 2U",
                "Network attached storage|NAS storage drive bays",
                "Hard disk drives|HDD hard drive SATA TB",
                "Solid state drives|SSD NVMe M.2 drive",
            ],
            "Computer accessories": [
                "Keyboards|keyboard wireless USB",
                "Computer mice|mouse wireless optical",
                "Monitors|monitor display LCD 24 inch 27 inch",
                "Docking stations|docking station USB-C laptop",
                "Webcams|webcam video conference camera",
            ],
        },
        "Networking equipment": {
            "Network hardware": [
                "Network switches|ethernet switch managed 24 port gigabit",
                "Routers|router WAN broadband",
                "Wireless access points|wifi access point WLAN",
                "Firewalls|firewall appliance network security",
            ],
            "Network components": [
                "Patch panels|patch panel 19 inch Cat6",
                "Network racks|server rack cabinet 19 inch 42U",
                "Transceivers|SFP transceiver module fibre",
            ],
        },
        "Telecommunications": {
            "Phones": [
                "Mobile phones|smartphone mobile phone",
                "Desk phones|VoIP desk telephone SIP",
                "Headsets|headset microphone call centre",
                "Two-way radios|walkie talkie radio",
            ],
        },
        "Printing and imaging": {
            "Printers": [
                "Laser printers|laser printer mono colour",
                "Inkjet printers|inkjet printer photo",
                "Label printers|label printer thermal barcode",
                "3D printers|3D printer filament FDM",
            ],
            "Printer supplies": [
                "Toner cartridges|toner cartridge laser",
                "Ink cartridges|ink cartridge inkjet",
                "Printer paper|copy paper A4 80gsm ream",
            ],
        },
    },
    "Building and construction materials": {
        "Structural materials": {
            "Timber": [
                "Sawn timber|sawn softwood timber batten",
                "Plywood|plywood sheet board mm",
                "OSB boards|oriented strand board OSB3",
                "MDF boards|medium density fibreboard MDF",
            ],
            "Concrete and cement": [
                "Cement|portland cement bag 25kg",
                "Ready mix concrete|concrete mix bag",
                "Mortar|mortar mix bricklaying",
                "Rebar|reinforcing steel bar rebar mesh",
            ],
            "Masonry": [
                "Bricks|clay bricks facing brick",
                "Concrete blocks|concrete block aerated",
                "Paving stones|paving slab stone patio",
            ],
        },
        "Fasteners": {
            "Screws": [
                "Wood screws|wood screw countersunk torx",
                "Machine screws|machine screw metric DIN 912",
                "Self tapping screws|self tapping sheet metal screw",
                "Drywall screws|drywall screw plasterboard phosphate",
            ],
            "Bolts and nuts": [
                "Hex bolts|hexagon bolt DIN 933 steel zinc",
                "Nuts|hex nut M8 M10 DIN 934",
                "Washers|flat washer spring washer",
                "Threaded rods|threaded rod stud M10",
            ],
            "Anchors and nails": [
                "Wall plugs|wall plug dowel anchor nylon",
                "Chemical anchors|chemical anchor resin",
                "Nails|nails wire round galvanised",
                "Expansion anchors|expansion bolt anchor concrete",
            ],
        },
        "Finishing materials": {
            "Paints and coatings": [
                "Interior paints|emulsion wall paint interior white",
                "Exterior paints|masonry paint exterior weather",
                "Wood stains|wood stain varnish",
                "Primers|primer undercoat",
                "Spray paints|aerosol spray paint",
            ],
            "Adhesives and sealants": [
                "Silicone sealants|silicone sealant bathroom",
                "Construction adhesives|construction adhesive grab",
                "Wood glue|PVA wood glue",
                "Epoxy adhesives|epoxy two component adhesive",
                "Expanding foam|polyurethane expanding foam",
            ],
            "Flooring": [
                "Laminate flooring|laminate floor planks",
                "Vinyl flooring|vinyl floor LVT",
                "Ceramic tiles|ceramic floor wall tile",
                "Carpet|carpet tiles",
            ],
        },
        "Insulation": {
            "Thermal insulation": [
                "Mineral wool|mineral wool insulation roll",
                "Insulation boards|PIR insulation board",
                "Pipe insulation|pipe lagging foam insulation",
            ],
        },
    },
    "Plumbing and heating": {
        "Pipes and fittings": {
            "Pipes": [
                "Copper pipes|copper pipe tube 15mm 22mm",
                "Plastic pipes|PVC pipe PE pipe water",
                "Multilayer pipes|multilayer composite pipe",
                "Drain pipes|drain waste pipe soil",
            ],
            "Fittings": [
                "Compression fittings|compression fitting brass",
                "Press fittings|press fitting copper",
                "Pipe clamps|pipe clip clamp bracket",
            ],
            "Valves": [
                "Ball valves|ball valve brass lever",
                "Check valves|non-return check valve",
                "Radiator valves|thermostatic radiator valve TRV",
                "Pressure reducing valves|pressure reducing valve water",
            ],
        },
        "Sanitary ware": {
            "Bathroom fixtures": [
                "Toilets|toilet WC pan cistern",
                "Washbasins|wash basin sink ceramic",
                "Shower sets|shower head hose set",
                "Bathtubs|bath tub acrylic",
            ],
            "Taps and mixers": [
                "Basin mixers|basin mixer tap",
                "Kitchen taps|kitchen sink mixer tap",
                "Thermostatic mixers|thermostatic shower mixer",
            ],
        },
        "Heating equipment": {
            "Boilers and heat pumps": [
                "Gas boilers|gas condensing boiler combi",
                "Heat pumps|air source heat pump",
                "Water heaters|electric water heater boiler tank",
            ],
            "Radiators and heaters": [
                "Panel radiators|steel panel radiator",
                "Electric heaters|electric fan heater convector",
                "Underfloor heating|underfloor heating mat",
            ],
        },
        "Ventilation and air conditioning": {
            "Air handling": [
                "Air conditioners|split air conditioner cooling",
                "Extractor fans|bathroom extractor fan",
                "Dehumidifiers|dehumidifier moisture",
                "Air purifiers|air purifier HEPA filter",
            ],
        },
    },
    "Safety and personal protective equipment": {
        "Personal protective equipment": {
            "Head and face protection": [
                "Safety helmets|safety helmet hard hat",
                "Safety glasses|safety glasses goggles eye protection",
                "Face shields|face shield visor",
                "Hearing protection|ear defenders earplugs",
            ],
            "Hand protection": [
                "Work gloves|work gloves leather",
                "Nitrile gloves|disposable nitrile gloves",
                "Cut resistant gloves|cut resistant gloves level",
                "Chemical gloves|chemical resistant gloves",
            ],
            "Body protection": [
                "High visibility clothing|hi-vis vest jacket",
                "Coveralls|coverall overall disposable",
                "Safety shoes|safety shoes boots steel toe S3",
                "Rain wear|rain jacket waterproof",
            ],
            "Respiratory protection": [
                "Dust masks|FFP2 FFP3 dust mask respirator",
                "Half masks|half mask respirator filter",
                "Respirator filters|gas filter cartridge A2P3",
            ],
        },
        "Fall protection": {
            "Fall arrest": [
                "Safety harnesses|full body harness fall arrest",
                "Lanyards|lanyard energy absorber",
                "Anchor points|anchor point roof",
            ],
        },
        "Fire safety": {
            "Fire fighting equipment": [
                "Fire extinguishers|fire extinguisher CO2 foam powder",
                "Fire blankets|fire blanket kitchen",
                "Smoke detectors|smoke alarm detector",
                "Fire hoses|fire hose reel",
            ],
        },
        "First aid": {
            "First aid supplies": [
                "First aid kits|first aid kit workplace",
                "Bandages|bandage plaster wound dressing",
                "Eye wash stations|eye wash station bottle",
            ],
        },
    },
    "Office equipment and supplies": {
        "Office supplies": {
            "Writing instruments": [
                "Ballpoint pens|ballpoint pen blue",
                "Markers|permanent marker highlighter",
                "Pencils|pencil graphite HB",
            ],
            "Paper products": [
                "Notebooks|notebook notepad ruled",
                "Envelopes|envelope C4 C5 DL",
                "Sticky notes|sticky notes post-it",
            ],
            "Filing and storage": [
                "Lever arch files|lever arch file binder",
                "Folders|folder document wallet",
                "Archive boxes|archive storage box",
            ],
            "Desk accessories": [
                "Staplers|office stapler",
                "Hole punches|hole punch paper",
                "Scissors|office scissors",
                "Calculators|calculator desktop",
            ],
        },
        "Office furniture": {
            "Seating": [
                "Office chairs|ergonomic office chair swivel",
                "Conference chairs|meeting chair stackable",
                "Stools|stool bar stool",
            ],
            "Tables and desks": [
                "Desks|office desk height adjustable",
                "Meeting tables|meeting conference table",
                "Filing cabinets|filing cabinet drawer",
            ],
        },
        "Presentation equipment": {
            "Displays and boards": [
                "Whiteboards|whiteboard magnetic",
                "Projectors|projector beamer",
                "Flipcharts|flipchart easel",
            ],
        },
    },
    "Cleaning and janitorial supplies": {
        "Cleaning equipment": {
            "Cleaning machines": [
                "Vacuum cleaners|vacuum cleaner wet dry",
                "Pressure washers|pressure washer high pressure cleaner bar",
                "Floor scrubbers|floor scrubber dryer",
                "Steam cleaners|steam cleaner",
            ],
            "Manual cleaning tools": [
                "Mops|mop bucket wringer",
                "Brooms|broom brush sweeping",
                "Microfibre cloths|microfibre cleaning cloth",
            ],
        },
        "Cleaning chemicals": {
            "Detergents": [
                "All purpose cleaners|all purpose cleaner detergent",
                "Disinfectants|disinfectant surface sanitiser",
                "Hand soap|hand soap liquid dispenser",
                "Degreasers|industrial degreaser",
            ],
        },
        "Washroom supplies": {
            "Paper hygiene": [
                "Toilet paper|toilet tissue roll",
                "Paper towels|paper hand towel roll",
                "Dispensers|paper towel soap dispenser",
            ],
            "Waste management": [
                "Bin bags|refuse sack bin liner",
                "Waste bins|waste bin pedal",
                "Recycling containers|recycling bin container",
            ],
        },
    },
    "Vehicles and automotive": {
        "Automotive parts": {
            "Engine parts": [
                "Oil filters|oil filter engine",
                "Air filters|air filter engine",
                "Spark plugs|spark plug ignition",
                "Timing belts|timing belt kit",
            ],
            "Brakes": [
                "Brake pads|brake pads disc",
                "Brake discs|brake disc rotor",
                "Brake fluid|brake fluid DOT4",
            ],
            "Tyres and wheels": [
                "Car tyres|car tyre summer winter",
                "Wheel rims|alloy wheel rim",
                "Tyre inflators|tyre inflator pump",
            ],
        },
        "Automotive fluids": {
            "Lubricants": [
                "Motor oil|engine oil 5W30 synthetic",
                "Greases|lubricating grease lithium",
                "Coolants|antifreeze coolant",
                "Penetrating oils|penetrating oil spray lubricant",
            ],
        },
        "Vehicle accessories": {
            "Car electronics": [
                "Dash cameras|dash cam car camera",
                "Car chargers|car charger USB 12V",
                "Jump starters|jump starter battery booster",
            ],
        },
    },
}


def build() -> list[dict]:
    """Flatten TREE into category records (parents before children)."""
    out: list[dict] = []
    for si, (segment, families) in enumerate(TREE.items()):
        s_code = f"{20 + si * 3:02d}000000"
        out.append({"code": s_code, "title": segment, "level": "segment", "parent": None,
                    "description": f"Segment: {segment.lower()}"})
        for fi, (family, classes) in enumerate(families.items()):
            f_code = f"{s_code[:2]}{10 + fi:02d}0000"
            out.append({"code": f_code, "title": family, "level": "family", "parent": s_code,
                        "description": f"{family} in {segment.lower()}"})
            for ci, (klass, commodities) in enumerate(classes.items()):
                c_code = f"{f_code[:4]}{15 + ci:02d}00"
                out.append({"code": c_code, "title": klass, "level": "class",
                            "parent": f_code,
                            "description": f"{klass}: {family.lower()}"})
                for ni, item in enumerate(commodities):
                    title, keywords = item.split("|", 1)
                    out.append({
                        "code": f"{c_code[:6]}{ni + 1:02d}",
                        "title": title,
                        "level": "commodity",
                        "parent": c_code,
                        "description": f"{keywords} ({klass.lower()}, {family.lower()})",
                    })
    return out


def main() -> None:
    default = Path(__file__).resolve().parent.parent / "kailash_app" / "data" / "taxonomy.json"
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    records = build()
    codes = [r["code"] for r in records]
    assert len(codes) == len(set(codes)), "duplicate codes"
    doc = {"name": "kailash-sample-taxonomy", "version": "1.0.0",
           "levels": ["segment", "family", "class", "commodity"], "categories": records}
    target.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{target}: {len(records)} categories "
          f"({sum(r['level'] == 'commodity' for r in records)} commodities)")


if __name__ == "__main__":
    main()
