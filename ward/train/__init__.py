"""ward.train"""
