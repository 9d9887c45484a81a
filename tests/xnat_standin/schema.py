"""The data-type schema the stand-in serves at `/xapi/schemas/xnat`: a small subset of XNAT's `xnat.xsd`.

Only the types and fields `xnat.connect` needs to build its object model for projects, subjects,
MR sessions, MR scans and catalog resources, written after the structure of XNAT's own schema.
"""

from __future__ import annotations

SCHEMA_NAMES = ("xnat",)

XNAT_XSD = """<?xml version="1.0" encoding="UTF-8"?>
<!-- The XNAT stand-in's schema: a subset of the xnat data types, for tests. -->
<xs:schema targetNamespace="http://nrg.wustl.edu/xnat" xmlns:xnat="http://nrg.wustl.edu/xnat" \
xmlns:xdat="http://nrg.wustl.edu/xdat" xmlns:xs="http://www.w3.org/2001/XMLSchema" \
elementFormDefault="qualified" attributeFormDefault="unqualified">
\t<xs:element name="Project" type="xnat:projectData"/>
\t<xs:element name="Subject" type="xnat:subjectData"/>
\t<xs:element name="MRSession" type="xnat:mrSessionData"/>
\t<xs:element name="MRScan" type="xnat:mrScanData"/>
\t<xs:element name="ResourceCatalog" type="xnat:resourceCatalog"/>
\t<xs:complexType name="projectData">
\t\t<xs:sequence>
\t\t\t<xs:element name="name" type="xs:string" minOccurs="0"/>
\t\t\t<xs:element name="description" type="xs:string" minOccurs="0"/>
\t\t\t<xs:element name="resources" minOccurs="0">
\t\t\t\t<xs:complexType>
\t\t\t\t\t<xs:sequence minOccurs="0">
\t\t\t\t\t\t<xs:element name="resource" type="xnat:abstractResource" minOccurs="0" maxOccurs="unbounded"/>
\t\t\t\t\t</xs:sequence>
\t\t\t\t</xs:complexType>
\t\t\t</xs:element>
\t\t</xs:sequence>
\t\t<xs:attribute name="ID" type="xs:string" use="required"/>
\t\t<xs:attribute name="secondary_ID" type="xs:string"/>
\t</xs:complexType>
\t<xs:complexType name="subjectData">
\t\t<xs:annotation>
\t\t\t<xs:appinfo>
\t\t\t\t<xdat:element displayIdentifiers="label"/>
\t\t\t</xs:appinfo>
\t\t</xs:annotation>
\t\t<xs:sequence>
\t\t\t<xs:element name="resources" minOccurs="0">
\t\t\t\t<xs:complexType>
\t\t\t\t\t<xs:sequence>
\t\t\t\t\t\t<xs:element name="resource" type="xnat:abstractResource" minOccurs="0" maxOccurs="unbounded"/>
\t\t\t\t\t</xs:sequence>
\t\t\t\t</xs:complexType>
\t\t\t</xs:element>
\t\t\t<xs:element name="experiments" minOccurs="0">
\t\t\t\t<xs:complexType>
\t\t\t\t\t<xs:sequence>
\t\t\t\t\t\t<xs:element name="experiment" type="xnat:subjectAssessorData" minOccurs="0" maxOccurs="unbounded"/>
\t\t\t\t\t</xs:sequence>
\t\t\t\t</xs:complexType>
\t\t\t</xs:element>
\t\t</xs:sequence>
\t\t<xs:attribute name="ID" type="xs:string" use="required"/>
\t\t<xs:attribute name="project" type="xs:string" use="optional"/>
\t\t<xs:attribute name="label" type="xs:string" use="optional"/>
\t</xs:complexType>
\t<xs:complexType name="experimentData">
\t\t<xs:annotation>
\t\t\t<xs:appinfo>
\t\t\t\t<xdat:element displayIdentifiers="label"/>
\t\t\t</xs:appinfo>
\t\t</xs:annotation>
\t\t<xs:sequence>
\t\t\t<xs:element name="date" type="xs:date" minOccurs="0"/>
\t\t\t<xs:element name="time" type="xs:time" minOccurs="0"/>
\t\t\t<xs:element name="note" type="xs:string" minOccurs="0"/>
\t\t\t<xs:element name="resources" minOccurs="0">
\t\t\t\t<xs:complexType>
\t\t\t\t\t<xs:sequence>
\t\t\t\t\t\t<xs:element name="resource" type="xnat:abstractResource" minOccurs="0" maxOccurs="unbounded"/>
\t\t\t\t\t</xs:sequence>
\t\t\t\t</xs:complexType>
\t\t\t</xs:element>
\t\t</xs:sequence>
\t\t<xs:attribute name="ID" type="xs:string" use="required"/>
\t\t<xs:attribute name="project" type="xs:string" use="required"/>
\t\t<xs:attribute name="label" type="xs:string"/>
\t</xs:complexType>
\t<xs:complexType name="subjectAssessorData">
\t\t<xs:complexContent>
\t\t\t<xs:extension base="xnat:experimentData">
\t\t\t\t<xs:sequence>
\t\t\t\t\t<xs:element name="subject_ID" type="xs:string" minOccurs="0"/>
\t\t\t\t</xs:sequence>
\t\t\t</xs:extension>
\t\t</xs:complexContent>
\t</xs:complexType>
\t<xs:complexType name="imageSessionData">
\t\t<xs:complexContent>
\t\t\t<xs:extension base="xnat:subjectAssessorData">
\t\t\t\t<xs:sequence>
\t\t\t\t\t<xs:element name="scanner" type="xs:string" minOccurs="0"/>
\t\t\t\t\t<xs:element name="modality" type="xs:string" minOccurs="0"/>
\t\t\t\t\t<xs:element name="scans" minOccurs="0">
\t\t\t\t\t\t<xs:complexType>
\t\t\t\t\t\t\t<xs:sequence>
\t\t\t\t\t\t\t\t<xs:element name="scan" type="xnat:imageScanData" minOccurs="0" maxOccurs="unbounded"/>
\t\t\t\t\t\t\t</xs:sequence>
\t\t\t\t\t\t</xs:complexType>
\t\t\t\t\t</xs:element>
\t\t\t\t</xs:sequence>
\t\t\t\t<xs:attribute name="UID" type="xs:string"/>
\t\t\t</xs:extension>
\t\t</xs:complexContent>
\t</xs:complexType>
\t<xs:complexType name="mrSessionData">
\t\t<xs:complexContent>
\t\t\t<xs:extension base="xnat:imageSessionData">
\t\t\t\t<xs:sequence>
\t\t\t\t\t<xs:element name="fieldStrength" type="xs:string" minOccurs="0"/>
\t\t\t\t</xs:sequence>
\t\t\t</xs:extension>
\t\t</xs:complexContent>
\t</xs:complexType>
\t<xs:complexType name="imageScanData">
\t\t<xs:sequence>
\t\t\t<xs:element name="image_session_ID" type="xs:string" minOccurs="0"/>
\t\t\t<xs:element name="note" type="xs:string" minOccurs="0"/>
\t\t\t<xs:element name="quality" type="xs:string" minOccurs="0"/>
\t\t\t<xs:element name="series_description" type="xs:string" minOccurs="0"/>
\t\t\t<xs:element name="frames" type="xs:integer" minOccurs="0"/>
\t\t\t<xs:element name="file" type="xnat:abstractResource" minOccurs="0" maxOccurs="unbounded"/>
\t\t</xs:sequence>
\t\t<xs:attribute name="ID" type="xs:string" use="required"/>
\t\t<xs:attribute name="type" type="xs:string"/>
\t\t<xs:attribute name="UID" type="xs:string"/>
\t\t<xs:attribute name="project" type="xs:string"/>
\t</xs:complexType>
\t<xs:complexType name="mrScanData">
\t\t<xs:complexContent>
\t\t\t<xs:extension base="xnat:imageScanData">
\t\t\t\t<xs:sequence>
\t\t\t\t\t<xs:element name="fieldStrength" type="xs:string" minOccurs="0"/>
\t\t\t\t</xs:sequence>
\t\t\t</xs:extension>
\t\t</xs:complexContent>
\t</xs:complexType>
\t<xs:complexType name="abstractResource">
\t\t<xs:annotation>
\t\t\t<xs:appinfo>
\t\t\t\t<xdat:element displayIdentifiers="label"/>
\t\t\t</xs:appinfo>
\t\t</xs:annotation>
\t\t<xs:sequence>
\t\t\t<xs:element name="note" type="xs:string" minOccurs="0"/>
\t\t</xs:sequence>
\t\t<xs:attribute name="label" type="xs:string"/>
\t\t<xs:attribute name="file_count" type="xs:integer"/>
\t\t<xs:attribute name="file_size" type="xs:integer"/>
\t</xs:complexType>
\t<xs:complexType name="resource">
\t\t<xs:complexContent>
\t\t\t<xs:extension base="xnat:abstractResource">
\t\t\t\t<xs:attribute name="URI" type="xs:string" use="required"/>
\t\t\t\t<xs:attribute name="format" type="xs:string"/>
\t\t\t\t<xs:attribute name="description" type="xs:string"/>
\t\t\t\t<xs:attribute name="content" type="xs:string"/>
\t\t\t</xs:extension>
\t\t</xs:complexContent>
\t</xs:complexType>
\t<xs:complexType name="resourceCatalog">
\t\t<xs:complexContent>
\t\t\t<xs:extension base="xnat:resource"/>
\t\t</xs:complexContent>
\t</xs:complexType>
</xs:schema>
"""
